"""What the `docservice` command prints: rich tables for people, proto JSON for scripts."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import betterproto2
from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from docservice._proto.document import Document, DocumentVersion

__all__ = [
    "CONTENT_PREVIEW_CHARS",
    "document_panel",
    "documents_table",
    "print_json",
    "versions_table",
]

CONTENT_PREVIEW_CHARS = 500

console = Console(highlight=False)


def print_json(message: betterproto2.Message) -> None:
    """One JSON document on stdout: the canonical proto3 JSON mapping, every field included."""
    sys.stdout.write(message.to_json(indent=2, include_default_values=True) + "\n")


def _status(document: Document) -> str:
    deleted = " (deleted)" if document.is_deleted else ""
    return str(document.status).lower() + deleted  # str() is UNKNOWN(n) for a newer status


def _preview(content: str) -> Text:
    if len(content) <= CONTENT_PREVIEW_CHARS:
        return Text(content)
    shown = Text(content[:CONTENT_PREVIEW_CHARS] + "…\n")
    shown.append(f"({len(content)} characters, truncated)", style="dim italic")
    return shown


def document_panel(document: Document) -> Panel:
    """Every field as key/value rows, the content (truncated) below them."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column(overflow="fold")
    rows = {
        "id": document.id,
        "title": document.title,
        "status": _status(document),
        "author": document.author,
        "tags": ", ".join(document.tags),
        "category": document.category,
        "version": str(document.version),
        "etag": document.etag,
        "created": document.created_at,
        "updated": document.updated_at,
        "deleted": document.deleted_at,
    }
    for key, value in rows.items():
        if value or key not in ("deleted", "category", "tags"):
            fields.add_row(key, Text(value))
    for number, comment in enumerate(document.comments, 1):
        fields.add_row(f"comment {number}", Text(comment))
    return Panel(
        Group(fields, Text(), _preview(document.content)),
        title=Text(document.title, style="bold"),
        title_align="left",
    )


def documents_table(documents: Iterable[Document], *, wide: bool) -> Table:
    """One row per document; `wide` (a terminal of 120+ columns) adds tags and update time."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("title", ratio=2, overflow="fold")
    table.add_column("status")
    table.add_column("author", ratio=1, overflow="fold")
    table.add_column("ver", justify="right")
    if wide:
        table.add_column("tags", ratio=1)
        table.add_column("updated", no_wrap=True)
    for doc in documents:
        row = [doc.id, doc.title, _status(doc), doc.author, str(doc.version)]
        if wide:
            row += [", ".join(doc.tags), doc.updated_at]
        table.add_row(*row, style="dim" if doc.is_deleted else None)
    return table


def versions_table(versions: Iterable[DocumentVersion]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("ver", justify="right")
    table.add_column("timestamp", no_wrap=True)
    table.add_column("title")
    table.add_column("status")
    table.add_column("author")
    table.add_column("tags")
    for version in versions:
        doc = version.document or Document()
        table.add_row(
            str(version.version),
            version.timestamp,
            doc.title,
            _status(doc),
            doc.author,
            ", ".join(doc.tags),
        )
    return table
