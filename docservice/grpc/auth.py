"""JWT bearer authentication and scope checks, as a grpclib RecvRequest listener.

A token (`authorization: Bearer <jwt>` metadata) is verified with PyJWT: signature (HS256 shared
secret, or an RS256/ES256 public key), `exp`, `nbf`, and `aud`/`iss` when configured. Its scopes
(`scope`, space-separated, or a `scopes` list) must include `documents:read` for reads and
`documents:write` for writes. Health checks and reflection stay open, as do the methods listed in
AUTH_PUBLIC_METHODS.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable

import jwt
from grpclib.const import Status
from grpclib.events import RecvRequest, listen
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from docservice.settings import Settings

__all__ = ["READ_SCOPE", "WRITE_SCOPE", "Authenticator", "verified_subject"]

READ_SCOPE = "documents:read"
WRITE_SCOPE = "documents:write"
SERVICE_PREFIX = "/document.DocumentService/"
READ_METHODS = frozenset(
    {
        "GetDocument",
        "ListDocuments",
        "GetDocumentVersions",
        "GetDocumentVersion",
        "DiffDocumentVersions",
        "BlameDocument",
        "SearchDocuments",
        "ListDocumentEvents",
        "WatchDocuments",
    }
)
log = logging.getLogger(__name__)
# The `sub` of the token the current call was let in with. grpclib runs the RecvRequest
# listener in the task that then runs the handler, so the handler sees what the check set.
_subject: contextvars.ContextVar[str] = contextvars.ContextVar("subject", default="")


def verified_subject() -> str:
    """The subject of the current call's verified token ("" without one)."""
    return _subject.get()


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        if settings.auth_jwt_secret is not None:
            self._key: str = settings.auth_jwt_secret.get_secret_value()
            default_algorithms = ["HS256"]
        else:
            assert settings.auth_jwt_public_key_file is not None
            self._key = settings.auth_jwt_public_key_file.read_text()
            default_algorithms = ["RS256", "ES256"]
        self._algorithms = settings.auth_jwt_algorithms or default_algorithms
        self._audience = settings.auth_jwt_audience
        self._issuer = settings.auth_jwt_issuer
        self._public = frozenset(settings.auth_public_methods)
        self._leeway = settings.auth_jwt_leeway_seconds

    def attach(self, server: Server, on_reject: Callable[[str, Status], None]) -> None:
        """Check every call before it starts; `on_reject(method, status)` sees refusals."""

        async def on_request(event: RecvRequest) -> None:
            try:
                self.check(event.method_name, event.metadata.get("authorization"))
            except GRPCError as exc:
                on_reject(event.method_name.rpartition("/")[2], exc.status)
                raise

        listen(server, RecvRequest, on_request)

    def check(self, method_path: str, authorization: object) -> None:
        """Raise UNAUTHENTICATED or PERMISSION_DENIED unless the call may go ahead."""
        if not method_path.startswith(SERVICE_PREFIX):
            return  # health checks and reflection
        method = method_path.removeprefix(SERVICE_PREFIX)
        if method in self._public:
            return
        header = authorization if isinstance(authorization, str) else ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GRPCError(Status.UNAUTHENTICATED, "a bearer token is required")
        try:
            claims = jwt.decode(
                token.strip(),
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            log.info("rejected token: %s", exc)  # the reason, never the token
            raise GRPCError(Status.UNAUTHENTICATED, f"invalid token: {exc}") from None
        needed = READ_SCOPE if method in READ_METHODS else WRITE_SCOPE
        if needed not in _scopes(claims):
            raise GRPCError(Status.PERMISSION_DENIED, f"the token lacks the {needed} scope")
        subject = claims.get("sub")
        _subject.set(subject if isinstance(subject, str) else "")


def _scopes(claims: dict[str, object]) -> set[str]:
    scope = claims.get("scope")
    scopes = claims.get("scopes")
    found = set(scope.split()) if isinstance(scope, str) else set()
    if isinstance(scopes, list):
        found.update(s for s in scopes if isinstance(s, str))
    return found
