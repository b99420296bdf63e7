"""What every client command shares: connection and output options, the call, its errors."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Concatenate, NoReturn, ParamSpec, TypeVar

import typer
from grpclib.client import Channel
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from docservice._proto.document import Document, DocumentServiceStub
from docservice.cli.output import console, document_panel, print_json

__all__ = ["DEFAULT_TARGET", "ClientOptions", "client_command", "docs", "fail", "run", "show"]

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_TARGET = "127.0.0.1:50051"


# --- shared connection and output options ------------------------------------------------


@dataclass(frozen=True)
class ClientOptions:
    target: str
    token: str
    tls: bool
    ca_file: Path | None
    timeout: float
    json: bool

    def __post_init__(self) -> None:
        host, _, port = self.target.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise typer.BadParameter(
                f"expected HOST:PORT, got {self.target!r}", param_hint="'--target'"
            )

    def channel(self) -> Channel:
        host, _, port = self.target.rpartition(":")
        context = None
        if self.tls or self.ca_file:
            context = ssl.create_default_context(cafile=self.ca_file)
            context.set_alpn_protocols(["h2"])
        return Channel(host.removeprefix("[").removesuffix("]"), int(port), ssl=context)

    @property
    def call_options(self) -> dict[str, Any]:
        metadata = [("authorization", f"Bearer {self.token}")] if self.token else None
        return {"timeout": self.timeout or None, "metadata": metadata}


def _shared(name: str, kind: Any, default: object, *decls: str, **option: Any) -> inspect.Parameter:
    """A keyword-only parameter that typer turns into an option of the shared help panel."""
    info = typer.Option(*decls, rich_help_panel="Connection and output", **option)
    annotation = Annotated[kind, info]
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


_SHARED_OPTIONS = [
    _shared(
        "target",
        str,
        DEFAULT_TARGET,
        envvar="DOCSERVICE_TARGET",
        metavar="<host:port>",
        help="Server address.",
    ),
    _shared(
        "token",
        str,
        "",
        envvar="DOCSERVICE_TOKEN",
        show_default=False,
        help="Bearer token sent as `authorization` metadata.",
    ),
    _shared("tls", bool, False, "--tls", help="Connect with TLS."),
    _shared(
        "ca_file",
        Path | None,
        None,
        exists=True,
        dir_okay=False,
        help="CA bundle to verify the server with (implies --tls).",
    ),
    _shared("timeout", float, 10.0, min=0, help="Seconds to wait for an answer (0: no limit)."),
    _shared("json", bool, False, "--json", help="Print the response as JSON."),
]


def client_command(fn: Callable[Concatenate[ClientOptions, P], None]) -> Callable[..., None]:
    """Add the shared options to a command (typer reads them from the signature)."""
    signature = inspect.signature(fn, eval_str=True)
    own = list(signature.parameters.values())[1:]

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> None:
        shared = {option.name: kwargs.pop(option.name) for option in _SHARED_OPTIONS}
        fn(ClientOptions(**shared), *args, **kwargs)

    command.__signature__ = signature.replace(parameters=[*own, *_SHARED_OPTIONS])  # type: ignore[attr-defined]
    return command


# --- calling the server ------------------------------------------------------------------


def fail(status: str, message: str) -> NoReturn:
    typer.echo(f"error: {status}: {message}" if message else f"error: {status}", err=True)
    raise typer.Exit(1)


def run(opts: ClientOptions, call: Callable[[Channel], Awaitable[T]]) -> T:
    """One call on a fresh channel; failures become one `error: ...` line and exit code 1."""

    async def run() -> T:
        channel = opts.channel()
        try:
            return await call(channel)
        finally:
            channel.close()

    target = opts.target
    try:
        return asyncio.run(run())
    except GRPCError as exc:
        fail(exc.status.name, exc.message or "")
    except TimeoutError:
        fail("DEADLINE_EXCEEDED", f"no answer from {target} within {opts.timeout:g} s")
    except ssl.SSLCertVerificationError as exc:
        fail("UNAVAILABLE", f"TLS: cannot verify {target}: {exc.verify_message}")
    except ssl.SSLError as exc:
        fail("UNAVAILABLE", f"TLS handshake with {target} failed: {exc.reason or exc}")
    except OSError as exc:
        # errno > 0: a socket error; resolver (gaierror) codes are negative
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror
        fail("UNAVAILABLE", f"cannot connect to {target} ({reason or exc})")
    except (StreamTerminatedError, ProtocolError) as exc:
        fail("UNAVAILABLE", f"connection to {target} failed: {exc}")


def docs(opts: ClientOptions, call: Callable[[DocumentServiceStub], Awaitable[T]]) -> T:
    return run(opts, lambda channel: call(DocumentServiceStub(channel, **opts.call_options)))


def show(opts: ClientOptions, document: Document | None) -> None:
    document = document or Document()
    if opts.json:
        print_json(document)
    else:
        console.print(document_panel(document))
