"""`python -m docservice`: run the gRPC server with settings from the environment."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from docservice.app import serve
from docservice.grpc.telemetry import configure_logging
from docservice.settings import Settings
from docservice.workers import supervise


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.exit(f"docservice: invalid settings:\n{exc}")
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers == 1:
        asyncio.run(serve(settings))
    else:
        supervise(settings)


if __name__ == "__main__":
    main()
