"""Opaque, signed page tokens: the keyset position of the last item served, tied to its query.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(key, payload)[:16])``; the payload
holds a fingerprint of the query it was issued for and the position. A token that was altered,
forged, or signed with another key is rejected; so is a genuine one used with a different
filter or document (AIP-158). Every server that should accept another's tokens needs the same
key (PAGE_TOKEN_SECRET); workers of one process share theirs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from docservice.core.errors import InvalidArgument

__all__ = ["FIELD", "PageTokens", "fingerprint"]

FIELD = "page_token"
_MAC_BYTES = 16


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    def __init__(self, key: bytes | None = None) -> None:
        """`key` signs and checks tokens; None: a random one, good for this process only."""
        self._key = key if key is not None else secrets.token_bytes(32)

    def encode(self, query_fingerprint: str, position: list[Any]) -> str:
        payload = _b64encode(
            json.dumps({"q": query_fingerprint, "p": position}, separators=(",", ":")).encode()
        )
        return f"{payload}.{_b64encode(self._mac(payload))}"

    def decode(self, token: str, query_fingerprint: str) -> list[Any]:
        """The position in `token`; InvalidArgument unless we signed it for this very query."""
        payload, _, mac = token.partition(".")
        try:
            if not (payload.isascii() and hmac.compare_digest(_b64decode(mac), self._mac(payload))):
                raise ValueError("not signed by us")
            content = json.loads(_b64decode(payload))
            position, issued_for = content["p"], content["q"]
        except (ValueError, TypeError, KeyError):
            raise InvalidArgument.of(FIELD, "is not a valid page token") from None
        if issued_for != query_fingerprint or not isinstance(position, list):
            raise InvalidArgument.of(FIELD, "was issued for a different request")
        return position

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:_MAC_BYTES]
