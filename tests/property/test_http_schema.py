"""schemathesis against the live HTTP face, on SQLite and PostgreSQL: requests generated from
`/openapi.json`, valid and invalid ones, get no 5xx, only documented statuses, content types and
headers, responses that match their schema, and every invalid one is refused. (Not every
schema-valid request is accepted: a filter's grammar or a title's length limit is more than the
schema says, and such a request is a 400 naming the field, as the contract tests check.)

The server is a real `python -m docservice` process (schemathesis calls are synchronous, so the
server cannot share the test's event loop). Half the generated calls on a document act on one
that exists, so writes reach the store rather than stopping at NOT_FOUND. The watch stream never
ends by itself and is left to tests/contract/test_http.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.processes import server_env
from tests.support.servers import free_port

EXAMPLES = 40  # per operation, per backend, per mode
START_SECONDS = 60.0


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(f"schema-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'docservice.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    port = free_port()
    env = server_env(
        DB_TYPE=request.param, DATABASE_URL=url, GRPC_PORT=str(free_port()), HTTP_PORT=str(port)
    )
    with (tmp / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "docservice"], cwd=tmp, env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_serving(base, process, tmp / "server.log")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_serving(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()}")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not answer within {START_SECONDS} s")


@pytest.fixture(scope="module")
def document_id(served: str) -> str:
    body = {"title": "schemathesis", "author": "schemathesis", "content": "one\ntwo\n"}
    response = httpx.post(f"{served}/v1/documents", json=body, timeout=10)
    assert response.status_code == 200, response.text
    identifier: str = response.json()["id"]
    return identifier


@pytest.fixture(scope="module")
def api(served: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served}/openapi.json")


# Invalid requests on an existing document: for a method with no other parameter (GET of a
# document) there is nothing left to make invalid, so the negative phase takes any id.
@pytest.mark.parametrize(
    ("mode", "on"),
    [
        (GenerationMode.POSITIVE, "any id"),
        (GenerationMode.POSITIVE, "a document"),
        (GenerationMode.NEGATIVE, "any id"),
    ],
)
def test_generated_calls_get_documented_answers(
    api: schemathesis.BaseSchema, document_id: str, mode: GenerationMode, on: str
) -> None:
    """Each operation in turn (schemathesis' pytest plugin does not run under pytest 9)."""
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 14
    for operation in operations:
        if operation.label.endswith(":watch"):
            continue
        pinned = {"id": document_id} if on == "a document" and "{id}" in operation.path else None
        strategy = operation.as_strategy(mode, path_parameters=pinned)

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same calls in every run, as the other property tests
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(timeout=30, excluded_checks=[positive_data_acceptance])

        call()
