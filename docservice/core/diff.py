"""Line diffs of version content, metadata field changes, and their unified-diff rendering.

Lines are compared as whole strings by patience diff (`patiencediff`, Breezy's, in Rust; git
offers the same algorithm as `diff --patience`): it strips the common head and tail, anchors on
the lines that occur exactly once on each side (their longest common subsequence, O(n log n)),
and recurses into the gaps between anchors; a gap with no unique line keeps its common head
and tail and reports the rest as replaced. It never goes quadratic, even on inputs built to
make Myers' algorithm or difflib do so (repeated and shuffled lines; `make bench` measures the
adversarial cases), and its hunks follow the structure of the text, as a reader expects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import patiencediff

from docservice._proto.document import (
    DiffHunk,
    DiffLine,
    Document,
    DocumentStatus,
    FieldChange,
    LineKind,
)

__all__ = [
    "LineOp",
    "field_changes",
    "hunks",
    "line_ops",
    "response_bytes",
    "split_lines",
]

CONTEXT_LINES = 3


@dataclass(frozen=True, slots=True)
class LineOp:
    """A run of lines: equal on both sides, or only in the old (removed) or new (added) one."""

    kind: LineKind
    lines: Sequence[str]


def split_lines(content: str) -> list[str]:
    """The lines of `content`, each with its "\\n" (the last one may have none)."""
    parts = content.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def line_ops(old: Sequence[str], new: Sequence[str]) -> list[LineOp]:
    """The runs of equal, removed and added lines that turn `old` into `new`."""
    ops: list[LineOp] = []
    matcher = patiencediff.PatienceSequenceMatcher(None, old, new)
    for tag, old_from, old_to, new_from, new_to in matcher.get_opcodes():
        if tag == "equal":
            ops.append(LineOp(LineKind.EQUAL, old[old_from:old_to]))
            continue
        if old_to > old_from:
            ops.append(LineOp(LineKind.REMOVED, old[old_from:old_to]))
        if new_to > new_from:
            ops.append(LineOp(LineKind.ADDED, new[new_from:new_to]))
    return ops


def hunks(
    ops: Sequence[LineOp], old_name: str, new_name: str, context: int = CONTEXT_LINES
) -> tuple[list[DiffHunk], str]:
    """The changes of `ops` grouped into hunks with `context` equal lines around each, and
    the same hunks as a unified diff (`diff -u`, `git diff`; empty when nothing changed).
    Changes closer than 2 * context lines share a hunk, as in a unified diff. Equal runs cost
    only the context lines taken from them."""
    groups: list[_Group] = []
    group: _Group | None = None
    old_at = new_at = 0
    for index, op in enumerate(ops):
        count = len(op.lines)
        if op.kind == LineKind.EQUAL:
            if group is not None:
                last = index == len(ops) - 1
                if count > 2 * context or last:
                    group.add(LineKind.EQUAL, op.lines[:context])
                    groups.append(group)
                    group = None
                else:
                    group.add(LineKind.EQUAL, op.lines)
            old_at += count
            new_at += count
            continue
        if group is None:
            before = ops[index - 1] if index and ops[index - 1].kind == LineKind.EQUAL else None
            lead = before.lines[-context:] if before is not None and context else []
            group = _Group(old_at - len(lead), new_at - len(lead), [])
            group.add(LineKind.EQUAL, lead)
        group.add(op.kind, op.lines)
        if op.kind == LineKind.REMOVED:
            old_at += count
        else:
            new_at += count
    if group is not None:
        groups.append(group)
    found = [_hunk(g) for g in groups]
    if not found:
        return [], ""
    out = [f"--- {old_name}\n", f"+++ {new_name}\n"]
    for hunk, g in zip(found, groups, strict=True):
        out.append(
            f"@@ -{_range(hunk.old_start, hunk.old_lines)} "
            f"+{_range(hunk.new_start, hunk.new_lines)} @@\n"
        )
        for kind, line in g.lines:
            out.append(_MARKS[kind] + line)
            if not line.endswith("\n"):  # only a content's last line can lack one
                out.append("\n\\ No newline at end of file\n")
    return found, "".join(out)


@dataclass(slots=True)
class _Group:
    old_at: int  # 0-based index, in the old content, of the group's first line
    new_at: int
    lines: list[tuple[LineKind, str]]

    def add(self, kind: LineKind, lines: Sequence[str]) -> None:
        self.lines.extend((kind, line) for line in lines)


def _hunk(group: _Group) -> DiffHunk:
    hunk = DiffHunk(lines=[DiffLine(kind=k, text=t.removesuffix("\n")) for k, t in group.lines])
    hunk.old_lines = sum(k != LineKind.ADDED for k, _ in group.lines)
    hunk.new_lines = sum(k != LineKind.REMOVED for k, _ in group.lines)
    # As unified diffs number them: a side with no lines starts at the line before.
    hunk.old_start = group.old_at + 1 if hunk.old_lines else group.old_at
    hunk.new_start = group.new_at + 1 if hunk.new_lines else group.new_at
    return hunk


def response_bytes(ops: Sequence[LineOp], context: int = CONTEXT_LINES) -> int:
    """At most what the hunks of `ops` and their rendering weigh in a response: every line they
    hold (changed ones and up to `context` equal ones each side) twice, with its framing."""
    total = 0
    for op in ops:
        lines = op.lines
        if op.kind == LineKind.EQUAL and len(lines) > 2 * context:
            lines = [*lines[:context], *lines[-context:]]
        total += sum(2 * len(line.encode()) + 16 for line in lines)
    return total


_MARKS = {LineKind.EQUAL: " ", LineKind.REMOVED: "-", LineKind.ADDED: "+"}


def _range(start: int, count: int) -> str:
    return str(start) if count == 1 else f"{start},{count}"


# -- metadata --------------------------------------------------------------------------------

SCALAR_FIELDS = ("title", "status", "author", "category", "is_deleted")
LIST_FIELDS = ("tags", "comments")


def field_changes(old: Document, new: Document) -> list[FieldChange]:
    """The metadata fields that differ between two versions, in the Document's field order."""
    changes = []
    for name in ("title", "status", "author"):
        changes += _scalar(name, old, new)
    changes += _items("tags", old.tags, new.tags)
    changes += _scalar("category", old, new)
    changes += _items("comments", old.comments, new.comments)
    changes += _scalar("is_deleted", old, new)
    return changes


def _scalar(name: str, old: Document, new: Document) -> list[FieldChange]:
    before, after = _json(getattr(old, name)), _json(getattr(new, name))
    return [] if before == after else [FieldChange(field=name, old_value=before, new_value=after)]


def _json(value: object) -> str:
    """A scalar field as proto3 JSON shows it: enums by name, booleans as true/false."""
    if isinstance(value, DocumentStatus):
        return value.name or str(int(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _items(name: str, old: Sequence[str], new: Sequence[str]) -> list[FieldChange]:
    """Items added and removed, counting repeats (a comment may appear twice)."""
    before, after = Counter(old), Counter(new)
    added = _in_order(new, after - before)
    removed = _in_order(old, before - after)
    if not added and not removed:
        return []
    return [FieldChange(field=name, added=added, removed=removed)]


def _in_order(items: Sequence[str], wanted: Counter[str]) -> list[str]:
    out = []
    left = Counter(wanted)
    for item in items:
        if left[item] > 0:
            out.append(item)
            left[item] -= 1
    return out
