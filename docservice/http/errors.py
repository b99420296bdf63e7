"""gRPC statuses as HTTP responses: the standard mapping, a `google.rpc.Status` JSON body.

| gRPC status | HTTP |
|---|---|
| INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION | 400 |
| FAILED_PRECONDITION of a stale etag (`If-Match`) | 412 |
| UNAUTHENTICATED | 401 |
| PERMISSION_DENIED | 403 |
| NOT_FOUND | 404 |
| ALREADY_EXISTS, ABORTED | 409 |
| RESOURCE_EXHAUSTED | 429 |
| CANCELLED | 499 |
| UNIMPLEMENTED | 501 |
| UNAVAILABLE | 503 |
| DEADLINE_EXCEEDED | 504 |
| INTERNAL, UNKNOWN, DATA_LOSS | 500 |

The body is `{"code": 3, "message": "...", "details": [{"@type": "type.googleapis.com/google.rpc.
BadRequest", "fieldViolations": [...]}]}`, the details exactly those of the gRPC status.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from starlette.responses import Response

from docservice.grpc.errors import ETAG_VIOLATION

__all__ = ["HTTP_STATUS", "error_response"]

HTTP_STATUS: dict[Status, int] = {
    Status.CANCELLED: 499,
    Status.UNKNOWN: 500,
    Status.INVALID_ARGUMENT: 400,
    Status.DEADLINE_EXCEEDED: 504,
    Status.NOT_FOUND: 404,
    Status.ALREADY_EXISTS: 409,
    Status.PERMISSION_DENIED: 403,
    Status.RESOURCE_EXHAUSTED: 429,
    Status.FAILED_PRECONDITION: 400,
    Status.ABORTED: 409,
    Status.OUT_OF_RANGE: 400,
    Status.UNIMPLEMENTED: 501,
    Status.INTERNAL: 500,
    Status.UNAVAILABLE: 503,
    Status.DATA_LOSS: 500,
    Status.UNAUTHENTICATED: 401,
}
STALE_ETAG = 412


def error_response(exc: GRPCError, code: int | None = None) -> Response:
    """The response for `exc`: its mapped HTTP status (or `code`), its Status as JSON."""
    status = status_pb2.Status(code=exc.status.value, message=exc.message or exc.status.name)
    code = code or HTTP_STATUS.get(exc.status, 500)
    for detail in exc.details or []:
        status.details.add().Pack(detail)
        if isinstance(detail, error_details_pb2.PreconditionFailure) and any(
            v.type == ETAG_VIOLATION for v in detail.violations
        ):
            code = STALE_ETAG
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    body = json.dumps(json_format.MessageToDict(status), separators=(",", ":"))
    return Response(body, code, headers, media_type="application/json")
