"""The one place where domain errors become gRPC statuses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from google.rpc import error_details_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from docservice.core.errors import (
    Aborted,
    DocServiceError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StaleEtag,
    Unavailable,
)
from docservice.core.feed import FeedUnavailable

__all__ = ["ETAG_VIOLATION", "grpc_status", "invalid_argument"]

log = logging.getLogger(__name__)
# The PreconditionFailure violation type of a stale etag (the HTTP face answers it with 412).
ETAG_VIOLATION = "ETAG"

STATUS_OF: dict[type[DocServiceError], Status] = {
    InvalidArgument: Status.INVALID_ARGUMENT,
    NotFound: Status.NOT_FOUND,
    FailedPrecondition: Status.FAILED_PRECONDITION,
    Aborted: Status.ABORTED,
    Unavailable: Status.UNAVAILABLE,
    ResourceExhausted: Status.RESOURCE_EXHAUSTED,
}


@contextmanager
def grpc_status() -> Iterator[None]:
    """Raise the GRPCError matching a domain error; anything unexpected becomes INTERNAL.

    INVALID_ARGUMENT carries `google.rpc.BadRequest` field violations as status details.
    Unexpected errors are logged with their traceback, which never reaches the client.
    """
    try:
        yield
    except (GRPCError, asyncio.CancelledError, StreamTerminatedError):
        raise  # a status already, or the client gone: nothing to map
    except InvalidArgument as exc:
        raise invalid_argument(exc) from None
    except FeedUnavailable as exc:
        raise feed_unavailable(exc) from None
    except StaleEtag as exc:
        raise _precondition_failure(ETAG_VIOLATION, f"documents/{exc.document_id}", exc) from None
    except DocServiceError as exc:
        raise GRPCError(STATUS_OF[type(exc)], str(exc)) from None
    except Exception:
        log.exception("unexpected error")
        raise GRPCError(Status.INTERNAL, "internal error") from None


def feed_unavailable(exc: FeedUnavailable) -> GRPCError:
    """FAILED_PRECONDITION with `google.rpc.PreconditionFailure` details whose violation's
    subject is the earliest valid resume token."""
    return _precondition_failure("RESUME_TOKEN", exc.earliest, exc)


def _precondition_failure(kind: str, subject: str, exc: Exception) -> GRPCError:
    violation = error_details_pb2.PreconditionFailure.Violation(
        type=kind, subject=subject, description=str(exc)
    )
    details = error_details_pb2.PreconditionFailure(violations=[violation])
    return GRPCError(Status.FAILED_PRECONDITION, str(exc), [details])


def invalid_argument(exc: InvalidArgument) -> GRPCError:
    """INVALID_ARGUMENT with `google.rpc.BadRequest` field violations as status details."""
    details = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in exc.violations
        ]
    )
    return GRPCError(Status.INVALID_ARGUMENT, str(exc), [details])
