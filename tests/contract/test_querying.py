"""ListDocuments' AIP-160 filter, AIP-132 order_by and AIP-157 view, on every backend."""

from __future__ import annotations

from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docservice._proto.document import (
    DeleteDocumentRequest,
    Document,
    DocumentServiceStub,
    DocumentStatus,
    DocumentView,
    ListDocumentsRequest,
    UpdateDocumentRequest,
)
from tests.support.contract import create, expect_status, unique, violated_fields


async def listed(stub: DocumentServiceStub, **fields: Any) -> list[Document]:
    return (await stub.list_documents(ListDocumentsRequest(page_size=100, **fields))).documents


async def titles(
    stub: DocumentServiceStub, author: str, expression: str, **fields: Any
) -> set[str]:
    documents = await listed(stub, filter=f'author = "{author}" AND ({expression})', **fields)
    return {d.title for d in documents}


async def corpus(stub: DocumentServiceStub) -> tuple[str, dict[str, Document]]:
    author = unique("author")
    made = {
        "alpha": await create(stub, author=author, title="alpha", tags=["x"], category="c1"),
        "beta": await create(
            stub, author=author, title="beta", status=DocumentStatus.PUBLISHED, category="c2"
        ),
        "gamma": await create(stub, author=author, title="gamma", tags=["x", "y"]),
        "delta": await create(stub, author=author, title="delta", status=DocumentStatus.ARCHIVED),
    }
    update = UpdateDocumentRequest(id=made["gamma"].id, content="edited")
    made["gamma"] = (await stub.update_document(update)).document
    return author, made


async def test_filter_comparisons_and_logic(stub: DocumentServiceStub) -> None:
    author, made = await corpus(stub)
    assert await titles(stub, author, 'title >= "beta"') == {"beta", "gamma", "delta"}
    assert await titles(stub, author, "title < delta") == {"alpha", "beta"}
    assert await titles(stub, author, "status = PUBLISHED") == {"beta"}
    assert await titles(stub, author, "NOT status = DRAFT") == {"beta", "delta"}
    assert await titles(stub, author, "-status = DRAFT") == {"beta", "delta"}
    assert await titles(stub, author, 'tags:"x"') == {"alpha", "gamma"}
    assert await titles(stub, author, 'tags:"y" OR category = c2') == {"gamma", "beta"}
    assert await titles(stub, author, "version >= 2") == {"gamma"}
    assert await titles(stub, author, "version = 1 category != c1") == {"beta", "delta"}
    since = made["gamma"].updated_at
    assert await titles(stub, author, f'update_time >= "{since}"') == {"gamma"}
    created = made["beta"].created_at
    assert await titles(stub, author, f"create_time > {created}") == {"gamma", "delta"}
    assert await titles(stub, author, '(title = alpha OR title = beta) AND tags:"x"') == {"alpha"}
    everything = {"alpha", "beta", "gamma", "delta"}
    assert await titles(stub, author, 'create_time > "0099-01-01T00:00:00Z"') == everything
    # AIP-160 precedence: OR binds tighter than AND.
    assert await titles(stub, author, "title = alpha title = beta OR title = alpha") == {"alpha"}
    # The legacy filter fields combine with it (AND).
    documents = await listed(stub, filter="status = DRAFT", author=author, tag="y")
    assert {d.title for d in documents} == {"gamma"}


async def test_deleted_documents_stay_hidden_unless_asked_for(stub: DocumentServiceStub) -> None:
    author, made = await corpus(stub)
    await stub.delete_document(DeleteDocumentRequest(id=made["alpha"].id))
    assert await titles(stub, author, 'tags:"x"') == {"gamma"}
    assert await titles(stub, author, 'tags:"x"', show_deleted=True) == {"alpha", "gamma"}


async def test_every_order_pages_completely_with_ties_by_id(stub: DocumentServiceStub) -> None:
    author = unique("author")
    made = [await create(stub, author=author, title=title) for title in "bcabca"]
    orders = {
        "title": lambda d: (d.title, d.id),
        "title asc": lambda d: (d.title, d.id),
        "title desc": lambda d: (d.title, d.id),
        "create_time": lambda d: (d.created_at, d.id),
        "create_time desc": lambda d: (d.created_at, d.id),
        "update_time": lambda d: (d.updated_at, d.id),
        "update_time desc": lambda d: (d.updated_at, d.id),
        "": lambda d: (d.updated_at, d.id),
    }
    for order_by, key in orders.items():
        descending = order_by.endswith("desc") or order_by == ""
        expected = [d.id for d in sorted(made, key=key, reverse=descending)]
        walked: list[str] = []
        token = ""
        while True:
            request = ListDocumentsRequest(
                author=author, order_by=order_by, page_size=4, page_token=token
            )
            response = await stub.list_documents(request)
            walked += [d.id for d in response.documents]
            token = response.next_page_token
            if not token:
                break
        assert walked == expected, order_by


async def test_the_basic_view_leaves_out_content_and_comments(stub: DocumentServiceStub) -> None:
    author = unique("author")
    made = await create(stub, author=author, content="big " * 1000, comments=["c"], tags=["t"])
    [basic] = await listed(stub, author=author, view=DocumentView.BASIC)
    assert (basic.content, basic.comments) == ("", [])
    assert (basic.id, basic.title, basic.tags, basic.etag) == (
        made.id,
        made.title,
        ["t"],
        made.etag,
    )
    for view in (DocumentView.FULL, DocumentView.DOCUMENT_VIEW_UNSPECIFIED):
        [full] = await listed(stub, author=author, view=view)
        assert full == made


async def test_bad_filters_and_orders_name_the_field_and_position(
    stub: DocumentServiceStub,
) -> None:
    cases = {
        "title": "position 6",
        "title = ": "position 9",
        "nope = 1": "unknown field 'nope'",
        'version = "x"': "version needs an integer",
        "status = LIVE": "status is one of",
        "update_time > yesterday": "RFC 3339",
        "(title = a": "expected ')'",
        "title = a AND": "expected a field name",
        " AND ".join(f"title = t{n}" for n in range(40)): "more than 32 comparisons",
        "(" * 20 + "title = a" + ")" * 20: "deeper than",
    }
    for expression, problem in cases.items():
        error = await expect_status(
            stub.list_documents(ListDocumentsRequest(filter=expression)), Status.INVALID_ARGUMENT
        )
        assert violated_fields(error) == ["filter"], expression
        assert problem in (error.message or ""), (expression, error.message)
    for order_by in ("author", "title sideways", "title asc desc"):
        error = await expect_status(
            stub.list_documents(ListDocumentsRequest(order_by=order_by)), Status.INVALID_ARGUMENT
        )
        assert violated_fields(error) == ["order_by"]


async def test_a_page_token_is_bound_to_its_filter_and_order(stub: DocumentServiceStub) -> None:
    author = unique("author")
    for title in "abc":
        await create(stub, author=author, title=title)
    first = await stub.list_documents(
        ListDocumentsRequest(filter=f'author = "{author}"', order_by="title", page_size=1)
    )
    assert first.next_page_token
    for other in ({"filter": f'author = "{author}" title != z'}, {"order_by": "title desc"}):
        fields: dict[str, Any] = {"filter": f'author = "{author}"', "order_by": "title", **other}
        request = ListDocumentsRequest(page_size=1, page_token=first.next_page_token, **fields)
        error = await expect_status(stub.list_documents(request), Status.INVALID_ARGUMENT)
        assert violated_fields(error) == ["page_token"]


async def test_user_text_is_only_ever_a_value(stub: DocumentServiceStub) -> None:
    author = unique("author")
    hostile = ["'; DROP TABLE documents; --", "$where", '{"$gt": ""}', "*", "%", "_", "\\"]
    for text in hostile:
        await create(stub, author=author, title=text)
    for text in hostile:
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        found = await titles(stub, author, f'title = "{quoted}"')
        assert found == {text}, text
    assert len(await listed(stub, author=author)) == len(hostile)


TOKENS = st.sampled_from(
    [
        "title", "author", "status", "version", "tags", "create_time", "update_time", "nope",
        "=", "!=", "<", "<=", ">", ">=", ":", "(", ")", "AND", "OR", "NOT", "-",
        '"x"', '"a\\"b"', "DRAFT", "1", "99999999999999999999", "2026-01-01T00:00:00Z",
        "'", ";", "$ne", "*", "%", "\\", " ",
    ]
)  # fmt: skip


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(TOKENS, max_size=12).map(" ".join), st.sampled_from(["", "title", "x"]))
async def test_generated_filters_give_a_page_or_invalid_argument(
    stub: DocumentServiceStub, expression: str, order_by: str
) -> None:
    try:
        await stub.list_documents(ListDocumentsRequest(filter=expression, order_by=order_by))
    except GRPCError as error:
        assert error.status == Status.INVALID_ARGUMENT, (expression, error)
        assert violated_fields(error)[0] in ("filter", "order_by")
