"""Domain errors: plain exceptions the service raises; `grpc.errors` maps them to statuses."""

from __future__ import annotations

__all__ = [
    "Aborted",
    "DocServiceError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "StaleEtag",
    "Unavailable",
]


class DocServiceError(Exception):
    """Base of every error the service reports to callers on purpose."""


class FieldViolation(DocServiceError):
    """One bad request field; `field` is its proto name (e.g. `tags[3]`)."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class InvalidArgument(DocServiceError):
    """The request is malformed; carries one violation per bad field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(str(v) for v in violations))
        self.violations = violations

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotFound(DocServiceError):
    pass


class FailedPrecondition(DocServiceError):
    pass


class StaleEtag(FailedPrecondition):
    """The write named an etag the document no longer has (AIP-154)."""

    def __init__(self, document_id: str, etag: str, current: str) -> None:
        super().__init__(f"etag {etag} is stale: document {document_id} is at {current}")
        self.document_id = document_id


class Aborted(DocServiceError):
    """Too much contention: the caller may retry."""


class ResourceExhausted(DocServiceError):
    """The answer would exceed a limit (e.g. the response size)."""


class Unavailable(DocServiceError):
    """The storage backend cannot be reached right now."""
