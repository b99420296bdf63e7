"""`python -m docservice`: run the gRPC server with settings from the environment."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from docservice.app import serve
from docservice.settings import Settings


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.exit(f"docservice: invalid settings:\n{exc}")
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin otherwise
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
