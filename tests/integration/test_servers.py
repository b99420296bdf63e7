"""The harness's promises about its servers (tests/support/servers.py, tests/conftest.py): the
pinned pip binaries win over the system's, every session names its servers even with -q, and a
server that cannot start ends the run with one line instead of an error per test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests
from tests.support.servers import FINDERS

ROOT = Path(tests.__file__).resolve().parent.parent  # wherever in tests/ this file lives


def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_pip_binaries_come_before_the_systems(backend: str) -> None:
    """The dev extra installs them, so they are what every session uses, here as in CI."""
    assert FINDERS[backend]().origin.startswith("pip "), FINDERS[backend]()


def test_each_server_is_named_with_its_version_even_with_q() -> None:
    result = _pytest("-q", "--collect-only", "tests/unit/test_codec.py")
    lines = [line for line in result.stdout.splitlines() if line.startswith("test server ")]
    assert [line.split(":")[0] for line in lines] == [
        "test server postgres",
        "test server redis",
        "test server mongo",
    ], result.stdout
    for backend, line in zip(FINDERS, lines, strict=True):
        assert FINDERS[backend]().describe() in line


def test_a_server_that_cannot_start_ends_the_run_with_one_line(tmp_path: Path) -> None:
    """test_total_size's tests need the session's PostgreSQL, here without binaries."""
    (tmp_path / "hide_postgres.py").write_text(
        f"import {FINDERS['postgres'].__module__} as servers\n"
        "def _missing():\n"
        "    raise servers.ServerUnavailable('postgres', 'hidden by the test')\n"
        "def pytest_configure(config):\n"
        "    servers.postgres_binaries = _missing\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    env.pop("TEST_POSTGRES_URL", None)
    result = _pytest("-p", "hide_postgres", "tests", "-k", "test_total_size", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    said = [line for line in output.splitlines() if "hidden by the test" in line]
    assert len(said) == 1, output
    assert "postgres test server unavailable: hidden by the test; run `make install`" in said[0]
    assert "Traceback" not in output
    assert " error" not in output
    assert "skipped" not in output
