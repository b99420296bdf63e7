"""Full-text search in MongoDB, without a text index: the document record carries its own terms.

MongoDB's `$text` needs a text index whose query language is itself syntax (`-word`,
`"phrase"`), and the test server (nx-27017) answers it wrongly: no stemming, exclusions
inverted, scores of 0. So each document record carries, written by the same `insert_one` or
compare-and-set `update_one` as the rest of its state (atomic with it; no extra step in the
write protocol, nothing to repair after a crash):

- `search_terms`: its distinct stems (snowball, SEARCH_LANGUAGE) of title, tags and the first
  INDEXED_CONTENT_CHARS of content, under a multikey index;
- `search_tf`: stem -> weighted frequency (a title occurrence counts 10, a tag 5, content 1);
- `search_language`: what it was analysed with (a change of language re-analyses at start).

A query is a conjunction of index lookups with the stems as values: `search_terms = stem` per
word, an `$elemMatch` range per prefix, `$nor` for exclusions. Phrases are looked up by their
stems and confirmed against the text here. Ranking happens in this process: the sum over the
query's stems of log(1 + weighted frequency), read through a projection of just those keys of
`search_tf` (plus 1 per prefix term). Every match is scored, so the cost grows with the number
of matches; the SQL stores rank inside the engine.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import snowballstemmer

from docservice._proto.document import Document, Snippet, TextMatch
from docservice.core.searching import WORD, Term

__all__ = ["INDEXED_CONTENT_CHARS", "SEARCH_FIELDS", "Analyzer", "Search"]

INDEXED_CONTENT_CHARS = 256 * 1024
WEIGHTS = {"title": 10, "tags": 5, "content": 1}
SEARCH_FIELDS = ("search_terms", "search_tf", "search_language")
SNIPPET_WORDS = 24
LAST_CODE_POINT = "\U0010ffff"
STEMS_KEPT = 65536


class Analyzer:
    """Words to stems for one language ("simple": lower case, no stemming)."""

    def __init__(self, language: str) -> None:
        self.language = language
        if language == "simple":
            self._stem = None
        elif language in snowballstemmer.algorithms():
            self._stem = snowballstemmer.stemmer(language)
        else:
            raise ValueError(f"SEARCH_LANGUAGE={language!r} is not a snowball language or simple")

        # Word frequencies are Zipf-like: a bounded memo answers most words of a document.
        self.stem = functools.lru_cache(maxsize=STEMS_KEPT)(self._stem_word)

    def _stem_word(self, word: str) -> str:
        return word if self._stem is None else str(self._stem.stemWord(word))

    def tokens(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, stem) of each word of `text` (runs of letters and digits)."""
        for match in WORD.finditer(text):
            yield match.start(), match.end(), self.stem(match.group().casefold())

    def stems(self, text: str) -> list[str]:
        return [self.stem(word) for word in WORD.findall(text.casefold())]

    def fields(self, document: Document) -> dict[str, Any]:
        """The search fields of `document`'s record."""
        frequencies: Counter[str] = Counter()
        for field, text in _texts(document.title, document.tags, document.content):
            for stem in self.stems(text):
                frequencies[stem] += WEIGHTS[field]
        return {
            "search_terms": sorted(frequencies),
            "search_tf": dict(frequencies),
            "search_language": self.language,
        }

    def search(self, terms: tuple[Term, ...]) -> Search:
        return Search(self, terms)


class Search:
    """One query, analysed once: its lookups, what ranking reads, and how each match is
    scored, confirmed and excerpted."""

    def __init__(self, analyzer: Analyzer, terms: tuple[Term, ...]) -> None:
        self._analyzer = analyzer
        stem = analyzer.stem
        included = [t for t in terms if not t.excluded]
        # Scored stems: those of the included words and phrases; prefixes count 1 each.
        self._stems = sorted({stem(w) for t in included if not t.prefix for w in t.words})
        self._prefixes = tuple(stem(t.words[0]) for t in included if t.prefix)
        # Phrases are looked up by their stems, then confirmed against the text.
        self._phrases = [
            ([stem(w) for w in t.words], t.excluded) for t in terms if len(t.words) > 1
        ]
        self.condition = _condition(analyzer, terms)
        self.projection = {"_id": 1, **{f"search_tf.{s}": 1 for s in self._stems}}
        if self._phrases:
            self.projection.update(title=1, tags=1, content=1)

    def score(self, row: dict[str, Any]) -> float:
        """The score of a match read with `projection`."""
        frequencies = (float(_frequency(row, stem)) for stem in self._stems)
        return len(self._prefixes) + sum(math.log1p(f) for f in frequencies)

    def confirms(self, record: dict[str, Any]) -> bool:
        """Whether the record holds each included phrase and none of the excluded ones."""
        if not self._phrases:
            return True
        texts = [
            self._analyzer.stems(text)
            for _, text in _texts(record["title"], record["tags"], record["content"])
        ]
        return all(
            any(_holds(stems, wanted) for stems in texts) != excluded
            for wanted, excluded in self._phrases
        )

    def snippets(self, record: dict[str, Any]) -> tuple[Snippet, ...]:
        stems, prefixes = frozenset(self._stems), self._prefixes

        def matched(stem: str) -> bool:
            return stem in stems or stem.startswith(prefixes)

        found = []
        title = record["title"]
        tokens = self._analyzer.tokens
        title_matches = [TextMatch(s, e) for s, e, stem in tokens(title) if matched(stem)]
        if title_matches:
            found.append(Snippet(field="title", text=title, matches=title_matches))
        content = record.get("content", "")[:INDEXED_CONTENT_CHARS]
        words = list(tokens(content))
        first = next((i for i, (_, _, stem) in enumerate(words) if matched(stem)), None)
        if first is not None:
            window = words[max(0, first - SNIPPET_WORDS // 4) :][:SNIPPET_WORDS]
            begin, end = window[0][0], window[-1][1]
            matches = [TextMatch(s - begin, e - begin) for s, e, stem in window if matched(stem)]
            found.append(Snippet(field="content", text=content[begin:end], matches=matches))
        return tuple(found)


def _condition(analyzer: Analyzer, terms: tuple[Term, ...]) -> dict[str, Any]:
    """The index lookups of `terms` (phrases still to be confirmed by `Search.confirms`)."""
    included: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    for term in terms:
        lookups: list[dict[str, Any]]
        if term.prefix:
            start = analyzer.stem(term.words[0])
            within = {"$gte": start, "$lt": start + LAST_CODE_POINT}
            lookups = [{"search_terms": {"$elemMatch": within}}]
        else:
            lookups = [{"search_terms": analyzer.stem(word)} for word in term.words]
        if not term.excluded:
            included += lookups
        elif len(term.words) == 1:  # an excluded phrase is confirmed absent instead
            excluded += lookups
    condition: dict[str, Any] = {"$and": included}
    if excluded:
        condition["$nor"] = excluded
    return condition


def _frequency(row: dict[str, Any], stem: str) -> Any:
    """A projected `search_tf.<stem>`: MongoDB nests it, nx-27017 returns the dotted key."""
    nested = row.get("search_tf")
    if isinstance(nested, dict) and stem in nested:
        return nested[stem]
    return row.get(f"search_tf.{stem}", 0)


def _texts(title: str, tags: Any, content: str) -> list[tuple[str, str]]:
    return [
        ("title", title),
        *(("tags", tag) for tag in tags),
        ("content", content[:INDEXED_CONTENT_CHARS]),
    ]


def _holds(stems: list[str], phrase: list[str]) -> bool:
    width = len(phrase)
    return any(stems[i : i + width] == phrase for i in range(len(stems) - width + 1))
