"""`python -m bench`: load-test a docservice deployment, or the stack's ceiling.

A tool, not part of the runtime package: it needs grpcio (the `bench` extra).
"""

from __future__ import annotations

import json
from typing import Annotated, NoReturn

import typer

from bench import load as engine

DEFAULT_TARGET = "127.0.0.1:50051"

app = typer.Typer(name="bench", add_completion=False)


def _fail(status: str, message: str) -> NoReturn:
    typer.echo(f"error: {status}: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def bench(
    scenario: Annotated[
        str, typer.Argument(help="get, get-many, create, update, list, history, mixed")
    ] = "get",
    target: Annotated[str, typer.Option(envvar="DOCSERVICE_TARGET")] = DEFAULT_TARGET,
    ceiling: Annotated[
        bool, typer.Option(help="Start a null grpclib + betterproto2 server and measure it.")
    ] = False,
    seconds: Annotated[float, typer.Option(help="How long to load.")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="Calls in flight.")] = 64,
    connections: Annotated[int, typer.Option(help="HTTP/2 connections.")] = 4,
    processes: Annotated[int, typer.Option(help="Client processes.")] = 1,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load-test a server: req/s, latency percentiles, non-OK statuses, client CPU share.

    Creates the documents the scenario needs first (e.g. 10 000 for get-many and list)."""
    try:
        result = engine.measure(
            target,
            scenario,
            ceiling=ceiling,
            seconds=seconds,
            concurrency=concurrency,
            connections=connections,
            processes=processes,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except Exception as exc:  # grpcio's errors during seeding: name the status when there is one
        code = getattr(exc, "code", None)
        _fail(code().name if callable(code) else "UNAVAILABLE", str(exc).splitlines()[0])
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    else:
        where = "a null grpclib + betterproto2 server" if ceiling else target
        typer.echo(f"{'ceiling' if ceiling else scenario} @ {where}: {result.summary()}")
    if result.errors:
        _fail("ERRORS", f"{result.errors} calls were not OK: not a valid result")


if __name__ == "__main__":
    app()
