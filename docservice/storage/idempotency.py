"""Creates that may be repeated: a request_id used before yields the document it created."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from docservice._proto.document import Document

__all__ = ["create_once"]


async def create_once(
    document: Document,
    request_id: str,
    insert: Callable[[], Awaitable[object]],
    *,
    duplicate: type[Exception],
    by_request_id: Callable[[str], Awaitable[Document | None]],
) -> Document:
    """Run `insert` (which stores `document` as version 1) and return `document`.

    When it fails with `duplicate` (a unique key taken) and `request_id` names a stored
    document, that one is returned: the request is a repeat whose first attempt succeeded. Any
    other unique-key violation is raised as it is.
    """
    try:
        await insert()
    except duplicate:
        existing = await by_request_id(request_id) if request_id else None
        if existing is None:
            raise
        return existing
    return document
