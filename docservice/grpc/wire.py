"""Responses built as protobuf bytes by hand: the one module that writes wire tags.

The read paths answer from documents that are already encoded (stored or cached bytes), so
they frame those bytes into the response instead of decoding and encoding them again. Field
numbers come from the generated messages' descriptors, never from literals; a unit test checks
each builder byte for byte against betterproto2's encoding of the same message.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import betterproto2

from docservice._proto.document import (
    DocumentVersion,
    GetDocumentResponse,
    GetDocumentVersionsResponse,
    ListDocumentsResponse,
    SearchDocumentsResponse,
    SearchResult,
)
from docservice.core.repository import SearchHit, Snapshot
from docservice.grpc.compat import message_metadata

__all__ = [
    "document_version",
    "get_document_response",
    "list_documents_response",
    "message_field",
    "search_response",
    "varint_field",
    "versions_response",
]


def _number(message: type[betterproto2.Message], field: str) -> int:
    return message_metadata(message).meta_by_field_name[field].number


GET_DOCUMENT = _number(GetDocumentResponse, "document")
LIST_DOCUMENTS = _number(ListDocumentsResponse, "documents")
LIST_NEXT_PAGE_TOKEN = _number(ListDocumentsResponse, "next_page_token")
LIST_TOTAL_SIZE = _number(ListDocumentsResponse, "total_size")
VERSIONS = _number(GetDocumentVersionsResponse, "versions")
VERSIONS_NEXT_PAGE_TOKEN = _number(GetDocumentVersionsResponse, "next_page_token")
SEARCH_RESULTS = _number(SearchDocumentsResponse, "results")
SEARCH_NEXT_PAGE_TOKEN = _number(SearchDocumentsResponse, "next_page_token")
RESULT_DOCUMENT = _number(SearchResult, "document")
RESULT_SCORE = _number(SearchResult, "score")
RESULT_SNIPPETS = _number(SearchResult, "snippets")
VERSION_ID = _number(DocumentVersion, "version_id")
VERSION_DOCUMENT = _number(DocumentVersion, "document")
VERSION_TIMESTAMP = _number(DocumentVersion, "timestamp")
VERSION_NUMBER = _number(DocumentVersion, "version")
VERSION_CHANGED_BY = _number(DocumentVersion, "changed_by")
VERSION_CHANGE_KIND = _number(DocumentVersion, "change_kind")
VERSION_CHANGE_MESSAGE = _number(DocumentVersion, "change_message")
VERSION_REVERTED_FROM = _number(DocumentVersion, "reverted_from")


def message_field(number: int, payload: bytes) -> bytes:
    """Field `number` holding `payload` (an encoded message, or UTF-8 text) in wire form."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def varint_field(number: int, value: int) -> bytes:
    """Field `number` holding a non-negative integer in wire form."""
    return _varint(number << 3) + _varint(value)


def double_field(number: int, value: float) -> bytes:
    """Field `number` holding a double (64-bit wire type); nothing for 0, as proto3 has it."""
    return _varint((number << 3) | 1) + struct.pack("<d", value) if value else b""


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _text(number: int, value: str) -> bytes:
    return message_field(number, value.encode()) if value else b""


def get_document_response(document: bytes) -> bytes:
    """GetDocumentResponse around an encoded Document."""
    return message_field(GET_DOCUMENT, document)


def list_documents_response(
    documents: Iterable[bytes], next_page_token: str, total_size: int
) -> bytes:
    """ListDocumentsResponse from encoded Documents."""
    body = b"".join(message_field(LIST_DOCUMENTS, d) for d in documents)
    body += _text(LIST_NEXT_PAGE_TOKEN, next_page_token)
    if total_size:
        body += varint_field(LIST_TOTAL_SIZE, total_size)
    return body


def document_version(snapshot: Snapshot) -> bytes:
    """The DocumentVersion of a snapshot (the same fields as core.model.version_message)."""
    change = snapshot.change
    return (
        message_field(VERSION_ID, str(snapshot.version).encode())
        + message_field(VERSION_DOCUMENT, snapshot.encoded)
        + _text(VERSION_TIMESTAMP, snapshot.updated_at)
        + varint_field(VERSION_NUMBER, snapshot.version)
        + _text(VERSION_CHANGED_BY, change.by)
        + (varint_field(VERSION_CHANGE_KIND, int(change.kind)) if change.kind else b"")
        + _text(VERSION_CHANGE_MESSAGE, change.message)
        + (
            varint_field(VERSION_REVERTED_FROM, change.reverted_from)
            if change.reverted_from
            else b""
        )
    )


def versions_response(snapshots: Iterable[Snapshot], next_page_token: str) -> bytes:
    """GetDocumentVersionsResponse from snapshots."""
    body = b"".join(message_field(VERSIONS, document_version(s)) for s in snapshots)
    return body + _text(VERSIONS_NEXT_PAGE_TOKEN, next_page_token)


def search_response(hits: Iterable[SearchHit], next_page_token: str) -> bytes:
    """SearchDocumentsResponse from hits, each with its encoded Document."""
    body = b"".join(
        message_field(
            SEARCH_RESULTS,
            message_field(RESULT_DOCUMENT, hit.encoded)
            + double_field(RESULT_SCORE, hit.score)
            + b"".join(message_field(RESULT_SNIPPETS, bytes(s)) for s in hit.snippets),
        )
        for hit in hits
    )
    return body + _text(SEARCH_NEXT_PAGE_TOKEN, next_page_token)
