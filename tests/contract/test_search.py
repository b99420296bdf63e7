"""SearchDocuments on every backend: a known corpus, tagged with a word of its own so that other
tests' documents never match."""

from __future__ import annotations

import uuid
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docservice._proto.document import (
    DeleteDocumentRequest,
    Document,
    DocumentServiceStub,
    DocumentView,
    SearchDocumentsRequest,
    SearchResult,
    UpdateDocumentRequest,
)
from tests.support.contract import create, expect_status, violated_fields


def marker() -> str:
    """A word no other document holds (letters and digits only: one search term)."""
    return "m" + uuid.uuid4().hex[:12]


async def search(stub: DocumentServiceStub, query: str, **fields: Any) -> list[SearchResult]:
    fields.setdefault("page_size", 100)
    response = await stub.search_documents(SearchDocumentsRequest(query=query, **fields))
    return response.results


async def hits(stub: DocumentServiceStub, query: str, **fields: Any) -> set[str]:
    return {r.document.title for r in await search(stub, query, **fields)}


async def corpus(stub: DocumentServiceStub) -> tuple[str, dict[str, Document]]:
    word = marker()
    made = {
        "a": await create(stub, title=f"Quantum gardening {word}", content="notes of the week"),
        "b": await create(stub, title="b", content=f"quantum physics for {word} beginners"),
        "c": await create(
            stub, title="c", content=f"{word}: garden vegetables and a quantum of salt"
        ),
        "d": await create(
            stub, title="d", content=f"{word} the quick brown fox jumps", tags=["fauna"]
        ),
        "e": await create(stub, title="e", content=f"{word} quantum, then deleted"),
    }
    await stub.delete_document(DeleteDocumentRequest(id=made["e"].id))
    return word, made


async def test_words_phrases_exclusions_and_prefixes(stub: DocumentServiceStub) -> None:
    word, _ = await corpus(stub)
    assert await hits(stub, f"{word} quantum") == {"Quantum gardening " + word, "b", "c"}
    assert await hits(stub, f'{word} "quick brown"') == {"d"}
    assert await hits(stub, f'{word} "brown quick"') == set()
    assert await hits(stub, f"{word} quantum -physics") == {"Quantum gardening " + word, "c"}
    assert await hits(stub, f'{word} -"quick brown" -quantum') == set()
    assert await hits(stub, f"{word} quant*") == {"Quantum gardening " + word, "b", "c"}
    assert await hits(stub, f"{word} vegetable") == {"c"}  # stemmed: vegetables
    assert await hits(stub, f"{word} fauna") == {"d"}  # tags are indexed
    assert await hits(stub, f"{word} QUANTUM Physics") == {"b"}  # case does not matter
    assert await hits(stub, f"{word} nowhere") == set()


async def test_a_title_match_outranks_a_content_match(stub: DocumentServiceStub) -> None:
    word, made = await corpus(stub)
    results = await search(stub, f"{word} quantum")
    assert results[0].document.id == made["a"].id
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1] > 0


async def test_snippets_mark_the_matched_terms(stub: DocumentServiceStub) -> None:
    word, made = await corpus(stub)
    by_id = {r.document.id: r for r in await search(stub, f"{word} physics")}
    (snippet,) = by_id[made["b"].id].snippets
    assert snippet.field == "content"
    marked = {snippet.text[m.start : m.end].lower() for m in snippet.matches}
    assert marked == {word, "physics"}
    assert "beginners" in snippet.text
    title = next(s for s in (await search(stub, f"{word} gardening"))[0].snippets)
    assert title.field == "title"
    assert {title.text[m.start : m.end].lower() for m in title.matches} == {"gardening", word}


async def test_deleted_documents_are_hidden_unless_asked_for(stub: DocumentServiceStub) -> None:
    word, _ = await corpus(stub)
    assert "e" not in await hits(stub, f"{word} deleted")
    assert await hits(stub, f"{word} deleted", show_deleted=True) == {"e"}


async def test_the_filter_narrows_a_search(stub: DocumentServiceStub) -> None:
    word, made = await corpus(stub)
    author = made["c"].author
    assert await hits(stub, f"{word} quantum", filter=f'author = "{author}"') == {"c"}
    assert await hits(stub, f"{word} quantum", filter='title = "b" OR title = "d"') == {"b"}


async def test_a_write_is_searchable_at_once(stub: DocumentServiceStub) -> None:
    first, second = marker(), marker()
    made = await create(stub, title="fresh", content=f"about {first}")
    assert await hits(stub, first) == {"fresh"}
    update = UpdateDocumentRequest(id=made.id, content=f"now about {second}")
    await stub.update_document(update)
    assert await hits(stub, first) == set()
    assert await hits(stub, second) == {"fresh"}
    await stub.delete_document(DeleteDocumentRequest(id=made.id))
    assert await hits(stub, second) == set()


async def test_pages_are_stable_and_complete(stub: DocumentServiceStub) -> None:
    word = marker()
    made = [
        await create(stub, title=f"doc {i}", content=f"{word} " + "filler " * i) for i in range(23)
    ]
    whole = [r.document.id for r in await search(stub, word)]
    paged: list[str] = []
    token = ""
    for _ in range(10):
        request = SearchDocumentsRequest(query=word, page_size=5, page_token=token)
        response = await stub.search_documents(request)
        paged += [r.document.id for r in response.results]
        token = response.next_page_token
        if not token:
            break
    assert paged == whole
    assert sorted(paged) == sorted(d.id for d in made)


async def test_the_basic_view_leaves_out_content(stub: DocumentServiceStub) -> None:
    word = marker()
    await create(stub, title="viewed", content=f"{word} " * 100, comments=["c"])
    (result,) = await search(stub, word, view=DocumentView.BASIC)
    assert result.document.title == "viewed"
    assert result.document.content == "" and result.document.comments == []
    assert result.snippets  # the snippet still comes from the content


async def test_bad_queries_name_the_field(stub: DocumentServiceStub) -> None:
    cases = {
        "": "query",
        "   ": "query",
        "-alone": "query",
        '"unterminated': "query",
        "x " * 40: "query",
    }
    for query, field in cases.items():
        error = await expect_status(
            stub.search_documents(SearchDocumentsRequest(query=query)), Status.INVALID_ARGUMENT
        )
        assert violated_fields(error) == [field], query
    error = await expect_status(
        stub.search_documents(SearchDocumentsRequest(query="x", filter="version = x")),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["filter"]
    word = marker()
    for i in range(3):
        await create(stub, title=f"t{i}", content=word)
    first = await stub.search_documents(SearchDocumentsRequest(query=word, page_size=1))
    error = await expect_status(
        stub.search_documents(
            SearchDocumentsRequest(query=f"{word} x", page_token=first.next_page_token)
        ),
        Status.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["page_token"]


QUERY_TOKENS = st.sampled_from(
    [
        "alpha", "quantum", '"', "-", "*", "**", "-*", "NEAR", "NEAR(", "OR", "AND", "NOT",
        "(", ")", ":", "title:", "^", "'", "''", "\\", "$where", "{", "}", "!", "&", "|",
        "<->", ":*", "é", "\u00a0", "\ue000", "\ue001", "%", "_", "0", "-0", "a-b",
    ]
)  # fmt: skip


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(QUERY_TOKENS, max_size=10).map(lambda parts: "".join(parts)), st.booleans())
async def test_generated_queries_give_results_or_invalid_argument(
    stub: DocumentServiceStub, query: str, spaced: bool
) -> None:
    query = " ".join(query) if spaced else query
    try:
        await stub.search_documents(SearchDocumentsRequest(query=query, page_size=5))
    except GRPCError as error:
        assert error.status == Status.INVALID_ARGUMENT, (query, error)
        assert violated_fields(error) == ["query"]
