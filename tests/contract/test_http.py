"""The HTTP/JSON face on every backend: the same service as gRPC, in the canonical JSON mapping.

Each test calls a real server on loopback with httpx and, where it says so, checks the answer
against what grpclib gets from the same server for the same document.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from docservice._proto.document import (
    BlameDocumentRequest,
    DiffDocumentVersionsRequest,
    DocumentServiceStub,
    GetDocumentRequest,
    GetDocumentVersionsRequest,
)
from docservice.app import App
from tests.support.contract import unique
from tests.support.http import server_sent_events, status_body, violations

TIMEOUT = 30.0


@pytest.fixture
async def http(app: App) -> AsyncIterator[httpx.AsyncClient]:
    assert app.http is not None
    base = f"http://127.0.0.1:{app.http.port}"
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
        yield client


async def _create(http: httpx.AsyncClient, **fields: object) -> dict[str, object]:
    body = {"title": unique("title"), "author": unique("author"), **fields}
    response = await http.post("/v1/documents", json=body, headers={"x-actor": "ann"})
    assert response.status_code == 200, response.text
    created: dict[str, object] = response.json()
    return created


async def test_the_json_is_the_canonical_mapping_of_what_grpc_answers(
    http: httpx.AsyncClient, stub: DocumentServiceStub
) -> None:
    created = await _create(http, content="one\ntwo\n", tags=["x", "y"], status="PUBLISHED")
    document_id = str(created["id"])
    reply = await stub.get_document(GetDocumentRequest(id=document_id))
    assert reply.document is not None
    assert created == reply.document.to_dict(include_default_values=True)
    assert created["version"] == "1" and created["status"] == "PUBLISHED"  # int64, enum names

    patched = await http.patch(
        f"/v1/documents/{document_id}",
        json={"content": "one\nthree\n", "updateMask": "content", "changeMessage": "fix"},
        headers={"x-actor": "bob"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == "2" and patched.json()["tags"] == ["x", "y"]

    paths = {
        f"/v1/documents/{document_id}/versions": await stub.get_document_versions(
            GetDocumentVersionsRequest(id=document_id)
        ),
        f"/v1/documents/{document_id}:diff?fromVersion=1&toVersion=2": (
            await stub.diff_document_versions(
                DiffDocumentVersionsRequest(id=document_id, from_version=1, to_version=2)
            )
        ),
        f"/v1/documents/{document_id}:blame": await stub.blame_document(
            BlameDocumentRequest(id=document_id)
        ),
    }
    for path, expected in paths.items():
        response = await http.get(path)
        assert response.status_code == 200, response.text
        assert response.json() == expected.to_dict(include_default_values=True), path
    versions = (await http.get(f"/v1/documents/{document_id}/versions")).json()["versions"]
    assert [(v["version"], v["changedBy"]) for v in versions] == [("1", "ann"), ("2", "bob")]
    one = await http.get(f"/v1/documents/{document_id}/versions/1")
    assert one.json()["document"]["content"] == "one\ntwo\n"


async def test_every_write_and_read_route(http: httpx.AsyncClient) -> None:
    author = unique("author")
    created = await _create(http, author=author, content="alpha beta")
    path = f"/v1/documents/{created['id']}"

    listed = await http.get("/v1/documents", params={"filter": f'author = "{author}"'})
    assert [d["id"] for d in listed.json()["documents"]] == [created["id"]]
    found = await http.get(
        "/v1/documents:search", params={"query": "alpha", "filter": f'author = "{author}"'}
    )
    assert [r["document"]["id"] for r in found.json()["results"]] == [created["id"]]

    assert (await http.patch(path, json={"content": "gamma"})).status_code == 200
    assert (await http.delete(path)).json() == {"success": True}
    assert (await http.get(path)).status_code == 404
    shown = await http.get("/v1/documents", params={"author": author, "showDeleted": "true"})
    assert [d["isDeleted"] for d in shown.json()["documents"]] == [True]
    restored = await http.post(f"{path}:restore", json={})
    assert restored.status_code == 200 and restored.json()["version"] == "4"
    reverted = await http.post(f"{path}:revert", json={"version": "1", "changeMessage": "back"})
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["version"] == "5" and reverted.json()["content"] == "alpha beta"

    events = await http.get("/v1/events", params={"filter": f'id = "{created["id"]}"'})
    # A page may stop short when the filter skipped many: follow it to the end of the log.
    kinds = [e["kind"] for e in events.json()["events"]]
    token = events.json()["resumeToken"]
    for _ in range(100):
        if len(kinds) >= 5:
            break
        page = await http.get(
            "/v1/events", params={"filter": f'id = "{created["id"]}"', "resumeToken": token}
        )
        kinds += [e["kind"] for e in page.json()["events"]]
        token = page.json()["resumeToken"]
    assert kinds == ["CREATED", "UPDATED", "DELETED", "RESTORED", "REVERTED"]


async def test_etags_travel_as_headers(http: httpx.AsyncClient) -> None:
    created = await _create(http)
    path = f"/v1/documents/{created['id']}"
    read = await http.get(path)
    assert read.headers["etag"] == created["etag"]
    assert (
        await http.get(path, headers={"If-None-Match": str(created["etag"])})
    ).status_code == 304

    stale = await http.patch(path, json={"title": "new"}, headers={"If-Match": '"stale"'})
    assert stale.status_code == 412
    (detail,) = status_body(stale)["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure"
    assert detail["violations"][0]["type"] == "ETAG"
    assert (await http.get(path)).json()["version"] == "1"  # nothing written

    fresh = await http.patch(
        path, json={"title": "new"}, headers={"If-Match": read.headers["etag"]}
    )
    assert fresh.status_code == 200 and fresh.headers["etag"] == fresh.json()["etag"]
    both = await http.patch(
        path, json={"title": "x", "etag": fresh.json()["etag"]}, headers={"If-Match": '"other"'}
    )
    assert violations(both) == ["etag"]
    gone = await http.delete(path, headers={"If-Match": str(created["etag"])})
    assert gone.status_code == 412
    # If-None-Match answers reads only: a write goes ahead and answers what it made.
    again = await http.patch(
        path, json={"title": "again"}, headers={"If-None-Match": fresh.headers["etag"]}
    )
    assert again.status_code == 200 and again.json()["version"] == "3"


async def test_bad_input_is_400_naming_the_field(http: httpx.AsyncClient) -> None:
    created = await _create(http)
    path = f"/v1/documents/{created['id']}"
    cases: list[tuple[httpx.Response, list[str]]] = [
        (await http.post("/v1/documents", json={"title": "t"}), ["author"]),
        (
            await http.post("/v1/documents", json={"title": "t", "author": "a", "colour": 1}),
            ["colour"],
        ),
        (await http.post("/v1/documents", json={"title": 5, "author": "a"}), ["title"]),
        (await http.post("/v1/documents", content=b"{not json"), ["body"]),
        (await http.post("/v1/documents", json=["a"]), ["body"]),
        (await http.patch(path, json={"version": "x"}), ["version"]),
        (await http.patch(path, json={"id": str(uuid.uuid4())}), ["id"]),
        (await http.get("/v1/documents", params={"pageSize": "ten"}), ["pageSize"]),
        (await http.get("/v1/documents", params={"showDeleted": "maybe"}), ["showDeleted"]),
        (await http.get("/v1/documents", params={"colour": "red"}), ["colour"]),
        (await http.get("/v1/documents", params={"filter": "title = "}), ["filter"]),
        (await http.get("/v1/documents:search", params={"query": ""}), ["query"]),
        (await http.get("/v1/documents/not-a-uuid"), ["id"]),
        (await http.get(f"{path}/versions/x"), ["version"]),
    ]
    # What the gRPC codec refuses on the wire is refused here too: PostgreSQL text has no NUL.
    nul = {"title": "a\u0000b", "author": "a", "tags": ["x", "y\u0000"]}
    cases.append((await http.post("/v1/documents", json=nul), ["title", "tags[1]"]))
    # A body where the route takes none is refused, not dropped (with it, a DELETE's etag).
    stale = {"etag": '"stale"'}
    cases.append((await http.request("DELETE", path, json=stale), ["body"]))
    twice = b'{"title": "t", "author": "a", "title": "u"}'
    cases.append((await http.post("/v1/documents", content=twice), ["body"]))
    both = {"changeMessage": "a", "change_message": "b", "title": "t", "author": "a"}
    cases.append((await http.post("/v1/documents", json=both), ["change_message"]))
    deep = b"[" * 100_000
    cases.append((await http.post("/v1/documents", content=deep), ["body"]))
    nan = b'{"title": "t", "author": "a", "bogus": NaN}'
    cases.append((await http.post("/v1/documents", content=nan), ["body"]))
    # An HTTP header may carry any byte; the actor must be printable ASCII, as on gRPC.
    actor = {"x-actor": "Zoë".encode()}
    body = {"title": "t", "author": "a"}
    cases.append((await http.post("/v1/documents", json=body, headers=actor), ["x-actor"]))
    for response, fields in cases:
        assert violations(response) == fields, response.request.url
    after = await http.get(path)
    assert after.json()["version"] == "1" and not after.json()["isDeleted"]


async def test_unknown_paths_and_methods_answer_a_status(http: httpx.AsyncClient) -> None:
    missing = await http.get("/v1/nothing-here")
    assert missing.status_code == 404 and status_body(missing)["code"] == 5
    wrong = await http.put("/v1/documents")
    assert wrong.status_code == 405 and status_body(wrong)["code"] == 12
    assert set(wrong.headers["allow"].split(", ")) >= {"GET", "POST"}
    gone = await http.get(f"/v1/documents/{uuid.uuid4()}")
    assert gone.status_code == 404 and status_body(gone)["code"] == 5


async def test_watch_is_server_sent_events_resumed_by_last_event_id(
    http: httpx.AsyncClient,
) -> None:
    author = unique("author")
    params = {"filter": f'author = "{author}"', "includeDocument": "true"}
    async with asyncio.timeout(TIMEOUT):
        async with http.stream("GET", "/v1/events:watch", params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = server_sent_events(response)
            first = await anext(events)
            assert first.event == "heartbeat" and first.data["event"] is None
            assert first.id == first.data["resumeToken"]
            created = await _create(http, author=author)
            change = await anext(events)
            assert change.event == "" and change.id == change.data["resumeToken"]
            assert change.data["event"]["kind"] == "CREATED"
            assert change.data["event"]["document"]["id"] == created["id"]
        await http.patch(f"/v1/documents/{created['id']}", json={"title": "moved on"})
        # An EventSource opened on a URL with a token repeats that URL when it reconnects, with
        # the newer Last-Event-ID: the header wins.
        headers = {"Last-Event-ID": change.id}
        params = {**params, "resumeToken": first.id}
        async with http.stream("GET", "/v1/events:watch", params=params, headers=headers) as again:
            events = server_sent_events(again)
            assert (await anext(events)).data["resumeToken"] == change.id
            update = await anext(events)
            assert update.data["event"]["kind"] == "UPDATED"
            assert update.data["event"]["document"]["title"] == "moved on"


async def test_a_token_of_another_log_is_refused_before_the_stream(
    http: httpx.AsyncClient,
) -> None:
    foreign = f"r1.{uuid.uuid4().hex}.5"
    response = await http.get("/v1/events:watch", headers={"Last-Event-ID": foreign})
    assert response.status_code == 400
    (detail,) = status_body(response)["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure"
    assert detail["violations"][0]["subject"].startswith("r1.")
