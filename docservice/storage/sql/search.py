"""Full-text search in the SQL stores: the index, kept by the database itself, and its queries.

The index is derived data. Triggers on `documents` write it in the statement that writes the
document, so it commits or rolls back with the write: a search that starts after an
acknowledged write finds it, and a failed write leaves no trace in it. Alembic owns the tables
of record; `ensure_index` (run after the migrations at every start) owns these objects, and
rebuilds them from `documents` when they are missing (a first start, or a migration that
recreated the table and with it dropped its triggers) or were built for another language.

- PostgreSQL: `search_vectors(document_id, vector)`, the tsvector of title (weight A), tags (B)
  and content (C) under the configured text search configuration, a GIN index on it, and an
  AFTER INSERT OR UPDATE trigger that recomputes the vector when one of those fields changed.
  Queries: websearch_to_tsquery of the quoted words and phrases, AND to_tsquery of each
  `prefix:*`; ranked by ts_rank_cd; snippets by ts_headline.
- SQLite: an FTS5 table over a view of (title, tags, content), external content so the text is
  not stored twice; its rowids are the integer keys of `search_keys` (a document's implicit rowid
  may change under VACUUM, a key never does). Tokenizer: porter stemming for english, else
  unicode61 alone. Ranked by bm25 with column weights 10 / 5 / 1; snippets by snippet().

Only the first INDEXED_CONTENT_CHARS of content are indexed (PostgreSQL caps a tsvector at
1 MiB; the same bound everywhere keeps the backends alike).
"""

from __future__ import annotations

import zlib
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from sqlalchemy.ext.asyncio import AsyncConnection

from docservice._proto.document import Snippet
from docservice.core.repository import SearchQuery
from docservice.core.searching import MARK_END, MARK_START, Term, snippet_of
from docservice.storage.sql.schema import documents

__all__ = [
    "INDEXED_CONTENT_CHARS",
    "OBJECT_PREFIX",
    "ensure_index",
    "fts5_query",
    "prefix_queries",
    "ranked",
    "snippets",
    "snippets_of",
    "websearch_text",
]

INDEXED_CONTENT_CHARS = 256 * 1024
OBJECT_PREFIX = "search_"  # every object this module owns (the schema test skips them)
TITLE_WEIGHT, TAGS_WEIGHT, CONTENT_WEIGHT = 10.0, 5.0, 1.0
SNIPPET_WORDS = 24

_search = MetaData()
config = Table("search_config", _search, Column("language", Text, nullable=False))
keys = Table(
    "search_keys",
    _search,
    Column("key", Integer, primary_key=True),
    Column("document_id", String(36), nullable=False, unique=True),
    # Whether the document is live (not soft-deleted): ranking reads this narrow row, not the
    # document's, whose fields sit behind its content.
    Column("live", Integer, nullable=False),
)
vectors = Table(
    "search_vectors",
    _search,
    Column("document_id", String(36), primary_key=True),
    Column("vector", TSVECTOR, nullable=False),
)
fts = Table("search_fts", _search, Column("rowid", Integer), Column("search_fts", Text))


async def ensure_index(conn: AsyncConnection, language: str) -> None:
    """Make the index exist for `language`, rebuilding it if need be (in the caller's
    transaction: processes starting together wait for each other)."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        known = await conn.scalar(
            text("SELECT count(*) FROM pg_ts_config WHERE cfgname = :name"), {"name": language}
        )
        if not known:
            raise ValueError(
                f"SEARCH_LANGUAGE={language!r} is not a PostgreSQL text search configuration"
            )
    expected = _POSTGRES_OBJECTS if postgres else _SQLITE_OBJECTS
    if await _built_for(conn, postgres) == (language, expected):
        return
    statements = _postgres_ddl(language) if postgres else _sqlite_ddl(language)
    for statement in statements:
        await conn.exec_driver_sql(statement)
    await conn.execute(config.insert(), {"language": language})


async def _built_for(conn: AsyncConnection, postgres: bool) -> tuple[str | None, frozenset[str]]:
    """The language the index was built for, and which of its objects exist."""
    if postgres:
        listing = text(
            "SELECT relname FROM pg_class WHERE relname LIKE 'search\\_%' AND relkind = 'r'"
            " UNION SELECT tgname FROM pg_trigger WHERE tgname LIKE 'search\\_%'"
        )
    else:
        listing = text("SELECT name FROM sqlite_master WHERE name LIKE 'search\\_%' ESCAPE '\\'")
    present = frozenset((await conn.execute(listing)).scalars())
    language = None
    if config.name in present:
        language = await conn.scalar(select(config.c.language).limit(1))
    return language, present & (_POSTGRES_OBJECTS if postgres else _SQLITE_OBJECTS)


_LOCK_KEY = zlib.crc32(b"docservice search index")
_POSTGRES_OBJECTS = frozenset({"search_config", "search_vectors", "search_index_document"})
_SQLITE_OBJECTS = frozenset(
    {
        "search_config",
        "search_keys",
        "search_fts",
        "search_insert",
        "search_update",
        "search_liveness",
    }
)


def _postgres_ddl(language: str) -> list[str]:
    # `language` matched ^[a-z_]+$ (settings) and names a configuration (checked above).
    def vector(row: str) -> str:
        return (
            f"setweight(to_tsvector('{language}'::regconfig, {row}.title), 'A')"
            f" || setweight(to_tsvector('{language}'::regconfig, {row}.tags::text), 'B')"
            f" || setweight(to_tsvector('{language}'::regconfig,"
            f" left({row}.content, {INDEXED_CONTENT_CHARS})), 'C')"
        )

    return [
        "DROP TRIGGER IF EXISTS search_index_document ON documents",
        "DROP TABLE IF EXISTS search_vectors, search_config",
        "CREATE TABLE search_config (language text NOT NULL)",
        "CREATE TABLE search_vectors (document_id varchar(36) PRIMARY KEY,"
        " vector tsvector NOT NULL)",
        f"""CREATE OR REPLACE FUNCTION search_index_document() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND NEW.title = OLD.title AND NEW.content = OLD.content
                    AND NEW.tags::text = OLD.tags::text THEN
                RETURN NULL;
            END IF;
            INSERT INTO search_vectors VALUES (NEW.id, {vector("NEW")})
            ON CONFLICT (document_id) DO UPDATE SET vector = EXCLUDED.vector;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER search_index_document AFTER INSERT OR UPDATE ON documents"
        " FOR EACH ROW EXECUTE FUNCTION search_index_document()",
        f"INSERT INTO search_vectors SELECT d.id, {vector('d')} FROM documents d",
        "CREATE INDEX search_vectors_vector ON search_vectors USING GIN (vector)",
    ]


def _sqlite_ddl(language: str) -> list[str]:
    tokenizer = (
        "porter unicode61 remove_diacritics 2"
        if language == "english"
        else ("unicode61 remove_diacritics 2")
    )

    def row(name: str) -> str:
        """The key and indexed fields of the trigger's `new` or `old` row."""
        return (
            f"(SELECT key FROM search_keys WHERE document_id = {name}.id), {name}.title,"
            f" {name}.tags, substr({name}.content, 1, {INDEXED_CONTENT_CHARS})"
        )

    return [
        "DROP TRIGGER IF EXISTS search_insert",
        "DROP TRIGGER IF EXISTS search_update",
        "DROP TRIGGER IF EXISTS search_liveness",
        "DROP TABLE IF EXISTS search_fts",
        "DROP VIEW IF EXISTS search_content",
        "DROP TABLE IF EXISTS search_keys",
        "DROP TABLE IF EXISTS search_config",
        "CREATE TABLE search_config (language TEXT NOT NULL)",
        "CREATE TABLE search_keys (key INTEGER PRIMARY KEY, document_id TEXT NOT NULL UNIQUE,"
        " live INTEGER NOT NULL)",
        f"CREATE VIEW search_content AS SELECT k.key AS key, d.title AS title, d.tags AS tags,"
        f" substr(d.content, 1, {INDEXED_CONTENT_CHARS}) AS content"
        " FROM search_keys k JOIN documents d ON d.id = k.document_id",
        "CREATE VIRTUAL TABLE search_fts USING fts5(title, tags, content,"
        f" content='search_content', content_rowid='key', tokenize='{tokenizer}')",
        f"""CREATE TRIGGER search_insert AFTER INSERT ON documents BEGIN
            INSERT INTO search_keys (document_id, live) VALUES (new.id, new.deleted_at IS NULL);
            INSERT INTO search_fts (rowid, title, tags, content) VALUES ({row("new")});
        END""",
        f"""CREATE TRIGGER search_update AFTER UPDATE OF title, tags, content ON documents
        WHEN new.title IS NOT old.title OR new.tags IS NOT old.tags
            OR new.content IS NOT old.content
        BEGIN
            INSERT INTO search_fts (search_fts, rowid, title, tags, content)
                VALUES ('delete', {row("old")});
            INSERT INTO search_fts (rowid, title, tags, content) VALUES ({row("new")});
        END""",
        """CREATE TRIGGER search_liveness AFTER UPDATE OF deleted_at ON documents
        WHEN (new.deleted_at IS NULL) IS NOT (old.deleted_at IS NULL)
        BEGIN
            UPDATE search_keys SET live = (new.deleted_at IS NULL) WHERE document_id = new.id;
        END""",
        "INSERT INTO search_keys (document_id, live) SELECT id, deleted_at IS NULL FROM documents",
        "INSERT INTO search_fts (search_fts) VALUES ('rebuild')",
    ]


def fts5_query(terms: tuple[Term, ...]) -> str:
    """An FTS5 MATCH expression with every word a quoted string (never an operator)."""

    def string(term: Term) -> str:
        return '"' + term.text.replace('"', '""') + '"' + ("*" if term.prefix else "")

    included = " AND ".join(string(t) for t in terms if not t.excluded)
    excluded = "".join(f" NOT {string(t)}" for t in terms if t.excluded)
    return f"({included}){excluded}"


def websearch_text(terms: tuple[Term, ...]) -> str:
    """websearch_to_tsquery input for the terms without a prefix: each quoted, so that `or`
    and `-` inside them stay words."""
    return " ".join(("-" if t.excluded else "") + f'"{t.text}"' for t in terms if not t.prefix)


def prefix_queries(terms: tuple[Term, ...]) -> list[str]:
    """to_tsquery input for each prefix term: its one word (letters and digits only) + `:*`."""
    return [("!" if t.excluded else "") + f"{t.text}:*" for t in terms if t.prefix]


def ranked(
    query: SearchQuery, conditions: list[ColumnElement[bool]], language: str | None
) -> Select[Any]:
    """(key, id, score) of the page's documents and one more, best first, ties by id.
    `conditions`: the filter's, on `documents`; `language`: PostgreSQL's text search
    configuration, None on SQLite."""
    if language is not None:
        tsquery = _tsquery(query.terms, language)
        score = cast(func.ts_rank_cd(vectors.c.vector, tsquery), Float(53))
        if not query.show_deleted:
            conditions = [documents.c.deleted_at.is_(None), *conditions]
        inner = (
            select(documents.c.id.label("id"), documents.c.id.label("key"), score.label("score"))
            .select_from(vectors.join(documents, documents.c.id == vectors.c.document_id))
            .where(vectors.c.vector.op("@@")(tsquery), *conditions)
        )
    else:
        bm25 = func.bm25(literal_column("search_fts"), TITLE_WEIGHT, TAGS_WEIGHT, CONTENT_WEIGHT)
        matches = fts.join(keys, keys.c.key == fts.c.rowid)
        if conditions:  # else the documents' rows are not read at all
            matches = matches.join(documents, documents.c.id == keys.c.document_id)
        if not query.show_deleted:
            conditions = [keys.c.live == 1, *conditions]
        inner = (
            select(keys.c.document_id.label("id"), keys.c.key.label("key"), (-bm25).label("score"))
            .select_from(matches)
            .where(_fts_match(query.terms), *conditions)
        )
    page = inner.subquery("matches")
    stmt = select(page.c.id, page.c.key, page.c.score)
    if query.after is not None:
        after_score, after_id = query.after
        stmt = stmt.where(
            or_(
                page.c.score < after_score,
                and_(page.c.score == after_score, page.c.id > after_id),
            )
        )
    return stmt.order_by(page.c.score.desc(), page.c.id.asc()).limit(query.limit + 1)


def snippets(
    terms: tuple[Term, ...], page_keys: list[Any], language: str | None, columns: list[Any]
) -> Select[Any]:
    """`columns` of the documents with those keys, with their key (search_key), marked title
    (search_title) and marked content excerpt (search_content)."""
    if language is not None:
        tsquery = _tsquery(terms, language)
        config_name = _config(language)
        marks = f"StartSel={MARK_START}, StopSel={MARK_END}"
        title = func.ts_headline(
            config_name, documents.c.title, tsquery, f"{marks}, HighlightAll=true"
        )
        content = func.ts_headline(
            config_name,
            func.left(documents.c.content, INDEXED_CONTENT_CHARS),
            tsquery,
            f"{marks}, MaxWords={SNIPPET_WORDS}, MinWords={SNIPPET_WORDS // 2}",
        )
        return select(
            *columns,
            documents.c.id.label("search_key"),
            title.label("search_title"),
            content.label("search_content"),
        ).where(documents.c.id.in_(page_keys))
    table: ColumnElement[Any] = literal_column("search_fts")
    return (
        select(
            *columns,
            fts.c.rowid.label("search_key"),
            func.snippet(table, 0, MARK_START, MARK_END, "…", 64).label("search_title"),
            func.snippet(table, 2, MARK_START, MARK_END, "…", SNIPPET_WORDS).label(
                "search_content"
            ),
        )
        .select_from(
            fts.join(keys, keys.c.key == fts.c.rowid).join(
                documents, documents.c.id == keys.c.document_id
            )
        )
        .where(_fts_match(terms), fts.c.rowid.in_(page_keys))
    )


def snippets_of(row: Any) -> tuple[Snippet, ...]:
    found = (snippet_of("title", row.search_title), snippet_of("content", row.search_content))
    return tuple(s for s in found if s is not None)


def _fts_match(terms: tuple[Term, ...]) -> ColumnElement[bool]:
    return literal_column("search_fts").op("MATCH")(
        bindparam("fts_query", fts5_query(terms), type_=Text)
    )


def _config(language: str) -> ColumnElement[Any]:
    return cast(bindparam("search_language", language, type_=Text), REGCONFIG)


def _tsquery(terms: tuple[Term, ...], language_name: str) -> ColumnElement[Any]:
    language = _config(language_name)
    query: ColumnElement[Any] = func.websearch_to_tsquery(
        language, bindparam("websearch", websearch_text(terms), type_=Text)
    )
    for index, prefix in enumerate(prefix_queries(terms)):
        query = query.op("&&")(
            func.to_tsquery(language, bindparam(f"prefix_{index}", prefix, type_=Text))
        )
    return query
