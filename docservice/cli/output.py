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

from docservice._proto.document import (
    BlameDocumentResponse,
    ChangeKind,
    DiffDocumentVersionsResponse,
    Document,
    DocumentEvent,
    DocumentVersion,
    SearchResult,
    Snippet,
)

__all__ = [
    "CONTENT_PREVIEW_CHARS",
    "blame_table",
    "diff_text",
    "document_panel",
    "documents_table",
    "event_line",
    "print_json",
    "search_table",
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


def search_table(results: Iterable[SearchResult]) -> Table:
    """One row per result, best first: score, id, title and the content snippet, the matched
    words highlighted."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("score", justify="right")
    table.add_column("id", no_wrap=True)
    table.add_column("title", ratio=1, overflow="fold")
    table.add_column("match", ratio=3, overflow="fold")
    for result in results:
        document = result.document or Document()
        snippets = {s.field: s for s in result.snippets}
        title = snippets.get("title")
        content = snippets.get("content")
        table.add_row(
            f"{result.score:.3g}",
            document.id,
            _marked(title) if title else Text(document.title),
            _marked(content) if content else Text(""),
        )
    return table


def _marked(snippet: Snippet) -> Text:
    text = Text(snippet.text)
    for match in snippet.matches:
        text.stylize("bold yellow", match.start, match.end)
    return text


def versions_table(versions: Iterable[DocumentVersion], *, wide: bool) -> Table:
    """Who made each version, what kind of change and why; status and tags when `wide`."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("ver", justify="right")
    table.add_column("when (UTC)", no_wrap=True)
    table.add_column("what", no_wrap=True)
    table.add_column("who", overflow="fold")
    table.add_column("title", overflow="fold")
    table.add_column("message", overflow="fold")
    if wide:
        table.add_column("status", no_wrap=True)
        table.add_column("tags", overflow="fold")
    for version in versions:
        doc = version.document or Document()
        row = [
            str(version.version),
            version.timestamp[:19].replace("T", " "),
            _kind(version.change_kind, version.reverted_from),
            version.changed_by,
            doc.title,
            version.change_message,
        ]
        if wide:
            row += [_status(doc), ", ".join(doc.tags)]
        table.add_row(*row)
    return table


def _kind(kind: ChangeKind, reverted_from: int = 0) -> str:
    if kind == ChangeKind.REVERTED and reverted_from:
        return f"reverted to {reverted_from}"
    return (kind.name or "").lower() if kind else ""


_LINE_STYLES = {"+": "green", "-": "red", "@": "cyan", "\\": "dim"}


def diff_text(diff: DiffDocumentVersionsResponse) -> Text:
    """The field changes, then the content's unified diff, coloured as `git diff` colours it."""
    text = Text()
    text.append(f"{diff.id}: version {diff.from_version} -> {diff.to_version}\n", style="bold")
    for change in diff.field_changes:
        if change.added or change.removed:
            text.append(f"{change.field}:")
            for item in change.removed:
                text.append(f" -{item}", style="red")
            for item in change.added:
                text.append(f" +{item}", style="green")
            text.append("\n")
        else:
            text.append(f"{change.field}: ")
            text.append(change.old_value, style="red")
            text.append(" -> ")
            text.append(change.new_value, style="green")
            text.append("\n")
    for line in diff.unified_diff.splitlines(keepends=True):
        style = "bold" if line.startswith(("--- ", "+++ ")) else _LINE_STYLES.get(line[:1])
        text.append(line, style=style)
    if not diff.field_changes and not diff.unified_diff:
        text.append("no changes\n", style="dim")
    return text


def blame_table(blame: BlameDocumentResponse, content: str) -> Table:
    """Each line of `content` with the version that last changed it, who and when."""
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("ver", justify="right", style="cyan")
    table.add_column("who", style="magenta")
    table.add_column("when", no_wrap=True, style="dim")
    table.add_column("line", justify="right", style="dim")
    table.add_column("text")
    lines = content.split("\n")
    for blamed in blame.ranges:
        for offset in range(blamed.line_count):
            number = blamed.start_line + offset
            first = offset == 0
            table.add_row(
                str(blamed.version) if first else "",
                blamed.changed_by if first else "",
                blamed.timestamp[:19] if first else "",
                str(number),
                Text(lines[number - 1] if number <= len(lines) else ""),
            )
    return table


def event_line(event: DocumentEvent) -> Text:
    """One change feed event: sequence, kind, document@version, who, when."""
    line = Text()
    line.append(f"{event.sequence:>8} ", style="dim")
    line.append(f"{_kind(event.kind):<9} ", style="bold")
    line.append(f"{event.document_id}@{event.version}")
    if event.changed_by:
        line.append(f"  by {event.changed_by}", style="cyan")
    line.append(f"  {event.timestamp}", style="dim")
    return line
