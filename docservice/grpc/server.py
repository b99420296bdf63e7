"""grpclib's Server, plus closing client connections when it closes."""

from __future__ import annotations

import weakref
from collections.abc import Collection
from typing import Any

from grpclib.config import Configuration
from grpclib.encoding.base import CodecBase
from grpclib.encoding.proto import ProtoStatusDetailsCodec
from grpclib.protocol import H2Protocol
from grpclib.server import Server

from docservice.grpc.compat import close_connection, track_connections

__all__ = ["ClosingServer"]


class ClosingServer(Server):
    """A grpclib Server whose close() also drops its open client connections.

    asyncio.Server.close() (before Python 3.12) stops listening but leaves accepted connections
    open, so idle clients would keep talking to a server that no longer answers.
    """

    def __init__(
        self, handlers: Collection[Any], *, codec: CodecBase, config: Configuration
    ) -> None:
        super().__init__(
            handlers, codec=codec, status_details_codec=ProtoStatusDetailsCodec(), config=config
        )
        self._protocols: weakref.WeakSet[H2Protocol] = weakref.WeakSet()
        track_connections(self, self._protocols)

    def close(self) -> None:
        super().close()
        for protocol in list(self._protocols):
            close_connection(protocol, "server shut down")
