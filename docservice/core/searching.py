"""SearchDocuments' query language, parsed here into terms that each engine turns into its own
query with the words as values (FTS5 strings, PostgreSQL tsquery input, MongoDB index keys), so
that user text never becomes engine syntax: no FTS5 `NEAR`/`OR`/column filters, no tsquery
operators, no MongoDB `$` anywhere.

    query := term*                              every term must hold (AND)
    term  := [-] ( "a quoted phrase" | word[*] )

A word is the run of letters and digits the engines index; other characters inside a bare word
split it into a phrase of its pieces (`e-mail` is the phrase "e mail", as PostgreSQL's
websearch_to_tsquery reads it). `-` excludes a word or phrase; a trailing `*` makes a word a
prefix. At least one term must be included: a search for nothing but exclusions would rank the
whole store.

Snippets come back from the engines with matched stretches between two private-use characters,
which `snippet_of` turns into a Snippet with match ranges (code points). A stored text that
itself holds those characters gets them dropped from its snippets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from docservice._proto.document import Snippet, TextMatch
from docservice.core.errors import InvalidArgument

__all__ = [
    "MARK_END",
    "MARK_START",
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_TERMS",
    "WORD",
    "Term",
    "parse_query",
    "snippet_of",
]

FIELD = "query"
MAX_QUERY_LENGTH = 1000
MAX_QUERY_TERMS = 32
MAX_PHRASE_WORDS = 16
MARK_START = "\ue000"
MARK_END = "\ue001"
# A word: a run of letters and digits (what the engines' tokenizers index).
WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Term:
    """One term: its words (lower case, each only letters and digits; several: a phrase)."""

    words: tuple[str, ...]
    excluded: bool = False
    prefix: bool = False  # the last (only) word is a prefix

    @property
    def text(self) -> str:
        return " ".join(self.words)


def parse_query(query: str) -> tuple[Term, ...]:
    """The terms of `query`; InvalidArgument naming `query` and the position when malformed."""
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidArgument.of(FIELD, f"must be at most {MAX_QUERY_LENGTH} characters")
    terms: list[Term] = []
    position = 0
    while position < len(query):
        if query[position].isspace():
            position += 1
            continue
        start = position
        excluded = query[position] == "-"
        if excluded:
            position += 1
        if position < len(query) and query[position] == '"':
            end = query.find('"', position + 1)
            if end < 0:
                raise InvalidArgument.of(FIELD, f"unterminated quoted phrase at position {start}")
            words, prefix, position = _words(query[position + 1 : end]), False, end + 1
        else:
            end = position
            while end < len(query) and not query[end].isspace() and query[end] != '"':
                end += 1
            raw, position = query[position:end], end
            prefix = raw.endswith("*")
            words = _words(raw.rstrip("*"))
            if prefix and len(words) != 1:
                prefix = False  # `*` after punctuation: a plain word or phrase
        if not words:
            continue  # punctuation alone matches nothing and excludes nothing
        if len(words) > MAX_PHRASE_WORDS:
            raise InvalidArgument.of(
                FIELD, f"the phrase at position {start} has more than {MAX_PHRASE_WORDS} words"
            )
        terms.append(Term(words, excluded, prefix))
        if len(terms) > MAX_QUERY_TERMS:
            raise InvalidArgument.of(FIELD, f"has more than {MAX_QUERY_TERMS} terms")
    if not any(not term.excluded for term in terms):
        raise InvalidArgument.of(FIELD, "must contain at least one word that is not excluded")
    return tuple(dict.fromkeys(terms))


def _words(text: str) -> tuple[str, ...]:
    return tuple(WORD.findall(text.casefold()))


def snippet_of(field: str, marked: str) -> Snippet | None:
    """The Snippet of engine output with matches between MARK_START and MARK_END; None when
    nothing in it matched."""
    text: list[str] = []
    matches: list[TextMatch] = []
    length = 0
    start = -1
    for char in marked:
        if char == MARK_START:
            start = length
        elif char == MARK_END:
            if 0 <= start < length:
                matches.append(TextMatch(start=start, end=length))
            start = -1
        else:
            text.append(char)
            length += 1
    if not matches:
        return None
    return Snippet(field=field, text="".join(text), matches=matches)
