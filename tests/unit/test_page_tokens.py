"""Page tokens are opaque and tamper-evident: only what this key signed, for this query."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from docservice.core.errors import InvalidArgument
from docservice.core.page_tokens import FIELD, PageTokens, fingerprint

tokens = PageTokens(b"k" * 32)
QUERY = fingerprint("documents", None, "ann", "", "", False)


def _b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rejected(token: str, query: str = QUERY, by: PageTokens = tokens) -> str:
    with pytest.raises(InvalidArgument) as caught:
        by.decode(token, query)
    assert [v.field for v in caught.value.violations] == [FIELD]
    return caught.value.violations[0].description


def test_round_trip() -> None:
    position = ["2026-11-26T10:00:00.123456Z", str(uuid.uuid4()), 42]
    token = tokens.encode(QUERY, position)
    assert token.isascii() and "=" not in token
    assert tokens.decode(token, QUERY) == position
    assert tokens.decode(tokens.encode(QUERY, [7]), QUERY) == [7]


def test_fingerprint_depends_on_every_part() -> None:
    assert fingerprint("documents", None, "ann", "", "", False) == QUERY
    assert fingerprint("documents", None, "bob", "", "", False) != QUERY
    assert fingerprint("documents", None, "ann", "", "", True) != QUERY
    assert fingerprint("documents", 0, "ann", "", "", False) != QUERY


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "!!!not base64!!!",
        "\u00e9t\u00e9.\u00e9",
        _b64(b"not json"),
        _b64(b'{"q": "x", "p": [1]}'),  # the old unsigned form
        _b64(b'{"q": "x", "p": [1]}') + ".",
        _b64(b'{"q": "x", "p": [1]}') + "." + _b64(b"\0" * 16),
    ],
)
def test_garbage_is_rejected(token: str) -> None:
    assert _rejected(token) == "is not a valid page token"


def test_a_changed_position_is_rejected() -> None:
    payload, _, mac = tokens.encode(
        QUERY, ["2026-11-26T10:00:00Z", str(uuid.uuid4()), 5]
    ).partition(".")
    content = json.loads(_unb64(payload))
    content["p"][2] = 6
    forged = _b64(json.dumps(content, separators=(",", ":")).encode())
    assert _rejected(f"{forged}.{mac}") == "is not a valid page token"


def test_a_forged_query_binding_is_rejected() -> None:
    """Re-pointing a token at another filter would let it read outside what it was issued for."""
    other = fingerprint("documents", None, "mallory", "", "", True)
    payload, _, mac = tokens.encode(QUERY, [3]).partition(".")
    content = json.loads(_unb64(payload))
    content["q"] = other
    forged = _b64(json.dumps(content, separators=(",", ":")).encode())
    _rejected(f"{forged}.{mac}", query=other)


def test_truncated_or_extended_macs_are_rejected() -> None:
    token = tokens.encode(QUERY, [3])
    _rejected(token[:-2])
    _rejected(token + "AA")


def test_another_key_is_rejected() -> None:
    token = PageTokens(b"x" * 32).encode(QUERY, [3])
    _rejected(token)
    assert PageTokens(b"x" * 32).decode(token, QUERY) == [3]
    # Without a configured key each instance makes its own.
    _rejected(PageTokens().encode(QUERY, [3]), by=PageTokens())


def test_a_genuine_token_for_another_query_says_so() -> None:
    other = fingerprint("versions", str(uuid.uuid4()))
    assert _rejected(tokens.encode(other, [3])) == "was issued for a different request"


def test_a_signed_non_list_position_is_rejected() -> None:
    payload = _b64(json.dumps({"q": QUERY, "p": 3}).encode())
    forged = f"{payload}.{_b64(tokens._mac(payload))}"
    _rejected(forged)
