"""HTTP clients of the HTTP face (docservice/http) for tests: JSON calls and an SSE reader."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["ServerSentEvent", "server_sent_events", "status_body", "violations"]


@dataclass
class ServerSentEvent:
    id: str
    event: str  # "" for an unnamed one (a change)
    data: dict[str, Any]


async def server_sent_events(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """The events of a `text/event-stream` response, as the EventSource algorithm reads them
    (fields per line, an event per blank line; `retry` and comments skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield ServerSentEvent(
                    fields.get("id", ""), fields.get("event", ""), json.loads(fields["data"])
                )
            fields = {}
            continue
        name, _, value = line.partition(":")
        if name in ("id", "event", "data"):
            fields[name] = value.removeprefix(" ")


def status_body(response: httpx.Response) -> dict[str, Any]:
    """The google.rpc.Status JSON of an error response (its content type checked)."""
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["code"], int) and isinstance(body["message"], str), body
    return body


def violations(response: httpx.Response) -> list[str]:
    """The fields a 400's google.rpc.BadRequest names."""
    assert response.status_code == 400, response.text
    (detail,) = status_body(response)["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    return [v["field"] for v in detail["fieldViolations"]]
