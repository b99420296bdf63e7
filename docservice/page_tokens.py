"""Opaque page tokens: the keyset position of the last item served, tied to its query.

A token carries a fingerprint of the query it was issued for; using it with a different
filter or document is rejected (AIP-158), as is anything that does not decode.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from docservice.errors import InvalidArgument

__all__ = ["decode", "encode", "fingerprint"]

FIELD = "page_token"


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def encode(query_fingerprint: str, position: list[Any]) -> str:
    payload = json.dumps({"q": query_fingerprint, "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode(token: str, query_fingerprint: str) -> list[Any]:
    """The position stored in `token`; InvalidArgument if it is malformed or from another query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        position = payload["p"]
        issued_for = payload["q"]
    except (ValueError, TypeError, KeyError):
        raise InvalidArgument.of(FIELD, "is not a valid page token") from None
    if issued_for != query_fingerprint or not isinstance(position, list):
        raise InvalidArgument.of(FIELD, "was issued for a different request")
    return position
