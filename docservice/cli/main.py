"""The `docservice` command: run the server, or call a running one from the shell.

Client commands share the connection and output options (--target, --token, --tls, --ca-file,
--timeout, --json), accepted after the command name. gRPC errors print one line on stderr,
`error: STATUS: message`, and exit with 1; usage errors exit with 2.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from docservice._proto.document import (
    BlameDocumentRequest,
    CreateDocumentRequest,
    DeleteDocumentRequest,
    DiffDocumentVersionsRequest,
    DocumentServiceStub,
    DocumentStatus,
    DocumentView,
    GetDocumentRequest,
    GetDocumentVersionRequest,
    GetDocumentVersionsRequest,
    ListDocumentEventsRequest,
    ListDocumentsRequest,
    RestoreDocumentRequest,
    RevertDocumentRequest,
    SearchDocumentsRequest,
    UpdateDocumentRequest,
    WatchDocumentsRequest,
)
from docservice._proto.google.protobuf import FieldMask
from docservice.cli.client import (
    ClientOptions,
    client_command,
    docs,
    run,
    show,
)
from docservice.cli.output import (
    blame_table,
    console,
    diff_text,
    documents_table,
    event_line,
    print_json,
    search_table,
    versions_table,
)

__all__ = ["app", "main"]


app = typer.Typer(
    name="docservice",
    help="Documents with full version history over gRPC: run the server or call it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# --- document fields ---------------------------------------------------------------------


class Status(StrEnum):
    draft = "draft"
    published = "published"
    archived = "archived"

    def proto(self) -> DocumentStatus:
        return DocumentStatus[self.name.upper()]


DocumentId = Annotated[str, typer.Argument(metavar="ID", show_default=False)]
Etag = Annotated[
    str, typer.Option(help="Only write while the document still has this etag.", show_default=False)
]
Title = Annotated[str | None, typer.Option(help="Title.")]
Author = Annotated[str | None, typer.Option(help="Author.")]
Content = Annotated[str | None, typer.Option(help="Content text.")]
ContentFile = Annotated[
    typer.FileText | None,
    typer.Option(
        encoding="utf-8", metavar="<path>", help="Read the content from a file ('-': stdin)."
    ),
]
StatusOption = Annotated[Status | None, typer.Option(help="Status.")]
Tags = Annotated[
    list[str] | None, typer.Option("--tag", metavar="<tag>", help="A tag (repeat for more).")
]
Category = Annotated[str | None, typer.Option(help="Category.")]
Comments = Annotated[
    list[str] | None,
    typer.Option("--comment", metavar="<text>", help="A comment (repeat for more)."),
]
Message = Annotated[
    str,
    typer.Option("--message", "-m", help="Why: recorded with the new version.", show_default=False),
]
PageSize = Annotated[int, typer.Option(min=0, help="Items per page (0: the server's default).")]
EventFilter = Annotated[
    str, typer.Option("--filter", help="AIP-160, as list's, plus id.", show_default=False)
]
IncludeDocument = Annotated[
    bool, typer.Option("--include-document", help="Each event with its document.")
]
PageToken = Annotated[
    str, typer.Option(help="next_page_token of the previous page.", show_default=False)
]


def _content(content: str | None, content_file: typer.FileText | None) -> str | None:
    if content is not None and content_file is not None:
        raise typer.BadParameter("give --content or --content-file, not both")
    return content_file.read() if content_file is not None else content


def _exclusive(value: object, clear: bool, option: str, clear_option: str) -> None:
    if value and clear:
        raise typer.BadParameter(f"give {option} or {clear_option}, not both")


# --- commands ----------------------------------------------------------------------------


@app.command()
def serve() -> None:
    """Run the gRPC server (settings from the environment), like `python -m docservice`."""
    from docservice.__main__ import main as run_server

    run_server()


@app.command()
@client_command
def get(opts: ClientOptions, document_id: DocumentId) -> None:
    """Show a document."""
    response = docs(opts, lambda docs: docs.get_document(GetDocumentRequest(id=document_id)))
    show(opts, response.document)


@app.command()
@client_command
def create(
    opts: ClientOptions,
    title: Annotated[str, typer.Option(help="Title.", show_default=False)],
    author: Annotated[str, typer.Option(help="Author.", show_default=False)],
    content: Content = None,
    content_file: ContentFile = None,
    status: Annotated[Status, typer.Option(help="Status.")] = Status.draft,
    tag: Tags = None,
    category: Annotated[str, typer.Option(help="Category.")] = "",
    comment: Comments = None,
    request_id: Annotated[
        str, typer.Option(help="Idempotency key: a retry returns the first document.")
    ] = "",
    message: Message = "",
) -> None:
    """Create a document (version 1)."""
    request = CreateDocumentRequest(
        title=title,
        author=author,
        content=_content(content, content_file) or "",
        status=status.proto(),
        tags=tag or [],
        category=category,
        comments=comment or [],
        request_id=request_id,
        change_message=message,
    )
    show(opts, docs(opts, lambda docs: docs.create_document(request)))


@app.command()
@client_command
def update(
    opts: ClientOptions,
    document_id: DocumentId,
    title: Title = None,
    author: Author = None,
    content: Content = None,
    content_file: ContentFile = None,
    status: StatusOption = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="<tag>", help="Replace the tags (repeat).")
    ] = None,
    clear_tags: Annotated[bool, typer.Option("--clear-tags", help="Remove all tags.")] = False,
    category: Category = None,
    clear_category: Annotated[
        bool, typer.Option("--clear-category", help="Remove the category.")
    ] = False,
    comment: Annotated[
        list[str] | None,
        typer.Option("--comment", metavar="<text>", help="Replace the comments (repeat)."),
    ] = None,
    clear_comments: Annotated[
        bool, typer.Option("--clear-comments", help="Remove all comments.")
    ] = False,
    etag: Etag = "",
    message: Message = "",
) -> None:
    """Change exactly the fields given (a new version); --clear-* empties a field."""
    _exclusive(tag, clear_tags, "--tag", "--clear-tags")
    _exclusive(category, clear_category, "--category", "--clear-category")
    _exclusive(comment, clear_comments, "--comment", "--clear-comments")
    new_content = _content(content, content_file)
    changes: dict[str, object] = {
        "title": title,
        "author": author,
        "content": new_content,
        "status": status.proto() if status else None,
        "tags": [] if clear_tags else tag or None,
        "category": "" if clear_category else category,
        "comments": [] if clear_comments else comment or None,
    }
    changes = {path: value for path, value in changes.items() if value is not None}
    if not changes:
        raise typer.BadParameter("nothing to update: give at least one field option")
    request = UpdateDocumentRequest(
        id=document_id,
        update_mask=FieldMask(paths=list(changes)),
        etag=etag,
        change_message=message,
    )
    for path, value in changes.items():
        setattr(request, path, value)
    response = docs(opts, lambda docs: docs.update_document(request))
    show(opts, response.document)


@app.command()
@client_command
def delete(
    opts: ClientOptions, document_id: DocumentId, etag: Etag = "", message: Message = ""
) -> None:
    """Soft-delete a document (restore brings it back)."""
    request = DeleteDocumentRequest(id=document_id, etag=etag, change_message=message)
    response = docs(opts, lambda docs: docs.delete_document(request))
    if opts.json:
        print_json(response)
    else:
        console.print(f"deleted {document_id}")


@app.command()
@client_command
def restore(
    opts: ClientOptions, document_id: DocumentId, etag: Etag = "", message: Message = ""
) -> None:
    """Make a deleted document live again."""
    request = RestoreDocumentRequest(id=document_id, etag=etag, change_message=message)
    show(opts, docs(opts, lambda docs: docs.restore_document(request)))


@app.command("list")
@client_command
def list_documents(
    opts: ClientOptions,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    status: StatusOption = None,
    author: Annotated[str, typer.Option(help="Only this author's documents.")] = "",
    tag: Annotated[str, typer.Option(help="Only documents with this tag.")] = "",
    category: Annotated[str, typer.Option(help="Only documents in this category.")] = "",
    show_deleted: Annotated[
        bool, typer.Option("--show-deleted", help="Include deleted ones.")
    ] = False,
    filter_: Annotated[
        str,
        typer.Option(
            "--filter", help='AIP-160, e.g. \'title >= "m" AND tags:"x"\'.', show_default=False
        ),
    ] = "",
    order_by: Annotated[
        str, typer.Option(help="update_time, create_time or title, then asc or desc.")
    ] = "",
    basic: Annotated[
        bool, typer.Option("--basic", help="Leave out content and comments (BASIC view).")
    ] = False,
) -> None:
    """List documents, most recently updated first unless --order-by says otherwise."""
    request = ListDocumentsRequest(
        filter=filter_,
        order_by=order_by,
        view=DocumentView.BASIC if basic else DocumentView.DOCUMENT_VIEW_UNSPECIFIED,
        page_size=page_size,
        page_token=page_token,
        status=status.proto() if status else None,
        author=author,
        tag=tag,
        category=category,
        show_deleted=show_deleted,
    )
    response = docs(opts, lambda docs: docs.list_documents(request))
    if opts.json:
        print_json(response)
        return
    console.print(documents_table(response.documents, wide=console.width >= 120))
    console.print(f"{len(response.documents)} shown, {response.total_size} in total")
    if response.next_page_token:
        console.print(f"next page: --page-token {response.next_page_token}", soft_wrap=True)


@app.command()
@client_command
def search(
    opts: ClientOptions,
    query: Annotated[
        str, typer.Argument(help='Words (all must match), "phrases", -excluded, prefix*.')
    ],
    filter_: Annotated[
        str, typer.Option("--filter", help="AIP-160, as for list.", show_default=False)
    ] = "",
    page_size: PageSize = 0,
    page_token: PageToken = "",
    show_deleted: Annotated[
        bool, typer.Option("--show-deleted", help="Include deleted ones.")
    ] = False,
    basic: Annotated[
        bool, typer.Option("--basic", help="Leave out content and comments (BASIC view).")
    ] = False,
) -> None:
    """Full-text search: the best matches first, the matched words highlighted."""
    request = SearchDocumentsRequest(
        query=query,
        filter=filter_,
        page_size=page_size,
        page_token=page_token,
        show_deleted=show_deleted,
        view=DocumentView.BASIC if basic else DocumentView.DOCUMENT_VIEW_UNSPECIFIED,
    )
    response = docs(opts, lambda docs: docs.search_documents(request))
    if opts.json:
        print_json(response)
        return
    console.print(search_table(response.results))
    if response.next_page_token:
        console.print(f"next page: --page-token {response.next_page_token}", soft_wrap=True)


@app.command()
@client_command
def history(
    opts: ClientOptions,
    document_id: DocumentId,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> None:
    """List a document's versions, oldest first."""
    request = GetDocumentVersionsRequest(id=document_id, page_size=page_size, page_token=page_token)
    response = docs(opts, lambda docs: docs.get_document_versions(request))
    if opts.json:
        print_json(response)
        return
    console.print(versions_table(response.versions, wide=console.width >= 120))
    if response.next_page_token:
        console.print(f"next page: --page-token {response.next_page_token}", soft_wrap=True)


@app.command()
@client_command
def revert(
    opts: ClientOptions,
    document_id: DocumentId,
    version: Annotated[int, typer.Argument(min=1, help="The version to go back to.")],
    etag: Etag = "",
    message: Message = "",
) -> None:
    """Append a new version equal to an older one."""
    request = RevertDocumentRequest(
        id=document_id, version=version, etag=etag, change_message=message
    )
    show(opts, docs(opts, lambda docs: docs.revert_document(request)))


@app.command()
@client_command
def diff(
    opts: ClientOptions,
    document_id: DocumentId,
    from_version: Annotated[
        int, typer.Argument(min=0, metavar="[FROM]", help="Default: the version before TO.")
    ] = 0,
    to_version: Annotated[
        int, typer.Argument(min=0, metavar="[TO]", help="Default: the current version.")
    ] = 0,
) -> None:
    """Show what changed between two versions: fields, then the content as a unified diff."""
    request = DiffDocumentVersionsRequest(
        id=document_id, from_version=from_version, to_version=to_version
    )
    response = docs(opts, lambda docs: docs.diff_document_versions(request))
    if opts.json:
        print_json(response)
    else:
        console.print(diff_text(response), end="", soft_wrap=True)


@app.command()
@client_command
def blame(
    opts: ClientOptions,
    document_id: DocumentId,
    version: Annotated[int, typer.Option(min=0, help="Default: the current version.")] = 0,
) -> None:
    """Show each line with the version that last changed it, and who made that version."""
    response = docs(
        opts,
        lambda docs: docs.blame_document(BlameDocumentRequest(id=document_id, version=version)),
    )
    if opts.json:
        print_json(response)
        return
    asked = GetDocumentVersionRequest(id=document_id, version=response.version)
    content = docs(opts, lambda docs: docs.get_document_version(asked)).document
    console.print(blame_table(response, content.content if content else ""))


@app.command()
@client_command
def events(
    opts: ClientOptions,
    filter_: EventFilter = "",
    start: Annotated[
        str,
        typer.Option("--from", help="After this token (default: the start).", show_default=False),
    ] = "",
    include_document: IncludeDocument = False,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> None:
    """List the change feed's events, oldest first, a page at a time."""
    request = ListDocumentEventsRequest(
        filter=filter_,
        resume_token=start,
        include_document=include_document,
        page_size=page_size,
        page_token=page_token,
    )
    response = docs(opts, lambda docs: docs.list_document_events(request))
    if opts.json:
        print_json(response)
        return
    for event in response.events:
        console.print(event_line(event), soft_wrap=True)
    if response.next_page_token:
        console.print(f"next page: --page-token {response.next_page_token}", soft_wrap=True)
    console.print(f"resume with: --from {response.resume_token}", soft_wrap=True)


@app.command()
@client_command
def watch(
    opts: ClientOptions,
    filter_: EventFilter = "",
    start: Annotated[
        str,
        typer.Option(
            "--from", help="Resume after this token (default: from now).", show_default=False
        ),
    ] = "",
    include_document: IncludeDocument = False,
    count: Annotated[int, typer.Option(min=0, help="Stop after this many events (0: never).")] = 0,
) -> None:
    """Follow the change feed: print events as they come (--json: one JSON object a line);
    when stopped (Ctrl-C, --count, the server going away) print the token to resume from.
    --timeout does not apply: a watch lasts until stopped."""
    request = WatchDocumentsRequest(
        filter=filter_, resume_token=start, include_document=include_document
    )
    position = [start]

    async def follow(docs: DocumentServiceStub) -> None:
        seen = 0
        async for message in docs.watch_documents(request, timeout=None):
            position[0] = message.resume_token or position[0]
            if message.event is None:
                continue
            if opts.json:
                typer.echo(message.event.to_json(include_default_values=True))
            else:
                console.print(event_line(message.event), soft_wrap=True)
            seen += 1
            if seen == count:
                return

    try:
        docs(opts, follow)
    except KeyboardInterrupt:
        pass
    finally:
        if position[0]:
            typer.echo(f"resume with: --from {position[0]}", err=True)


@app.command()
@client_command
def health(
    opts: ClientOptions,
    service: Annotated[str, typer.Option(help="Service name ('': the whole server).")] = "",
) -> None:
    """Ask grpc.health.v1.Health; exit 0 only when SERVING."""
    request = HealthCheckRequest(service=service)
    response = run(opts, lambda channel: HealthStub(channel).Check(request, **opts.call_options))
    status = HealthCheckResponse.ServingStatus.Name(response.status)
    if opts.json:
        typer.echo(json.dumps({"status": status}))
    else:
        console.print(status)
    if response.status != HealthCheckResponse.SERVING:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
