"""Blame: for each line of a version's content, the version that last changed it.

Fed the versions in order, from the first, `Blame` keeps each current line's origin and, for
each version whose content differs from the one before, carries the origins of the lines the
line diff (core/diff.py) keeps and gives the new version the lines it adds. The cost is linear
in the number of versions (those that leave the content as it was cost a comparison), each
diff costing about what its edit touches.
"""

from __future__ import annotations

from dataclasses import dataclass

from docservice._proto.document import BlameRange, ChangeKind, LineKind
from docservice.core.diff import line_ops, split_lines

__all__ = ["Blame", "Origin", "ranges_of", "response_bytes"]


@dataclass(frozen=True, slots=True)
class Origin:
    """The version a line came from, and who made it when."""

    version: int
    changed_by: str
    timestamp: str
    change_kind: ChangeKind


class Blame:
    def __init__(self) -> None:
        self._content = ""
        self._lines: list[str] = []
        self._origins: list[Origin] = []

    def feed(self, content: str, origin: Origin) -> None:
        """The next version's content, and where it comes from."""
        if content == self._content:
            return
        lines = split_lines(content)
        origins: list[Origin] = []
        at = 0
        for op in line_ops(self._lines, lines):
            if op.kind == LineKind.EQUAL:
                origins += self._origins[at : at + len(op.lines)]
            if op.kind == LineKind.ADDED:
                origins += [origin] * len(op.lines)
            else:
                at += len(op.lines)
        self._content, self._lines, self._origins = content, lines, origins

    def runs(self) -> list[tuple[int, int, Origin]]:
        """Consecutive lines of one origin: (first line, numbered from 1; count; origin)."""
        runs: list[tuple[int, int, Origin]] = []
        for number, origin in enumerate(self._origins, start=1):
            if runs and runs[-1][2].version == origin.version:
                start, count, _ = runs[-1]
                runs[-1] = (start, count + 1, origin)
            else:
                runs.append((number, 1, origin))
        return runs


def ranges_of(runs: list[tuple[int, int, Origin]]) -> list[BlameRange]:
    return [
        BlameRange(
            start_line=start,
            line_count=count,
            version=origin.version,
            changed_by=origin.changed_by,
            timestamp=origin.timestamp,
            change_kind=origin.change_kind,
        )
        for start, count, origin in runs
    ]


def response_bytes(runs: list[tuple[int, int, Origin]]) -> int:
    """At most what the ranges of `runs` weigh encoded (their texts and some 40 bytes of
    numbers and framing each)."""
    return sum(len(o.changed_by.encode()) + len(o.timestamp) + 40 for _, _, o in runs)
