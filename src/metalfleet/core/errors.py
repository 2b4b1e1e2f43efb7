"""Domain errors. The API turns each into an RFC 7807 problem in one place (api/problems.py)."""

from __future__ import annotations

from typing import Any


class MetalfleetError(Exception):
    """Base of every domain error: a title, a detail saying how to fix it, an HTTP status."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFoundError(MetalfleetError):
    status = 404
    title = "Not found"


class ConflictError(MetalfleetError):
    status = 409
    title = "Conflict"


class InvalidTransitionError(ConflictError):
    title = "Action not allowed in this state"


class NodeBusyError(ConflictError):
    title = "Node is busy"


class ValidationError(MetalfleetError):
    status = 422
    title = "Invalid request"


class AuthenticationError(MetalfleetError):
    status = 401
    title = "Not authenticated"


class PermissionDeniedError(MetalfleetError):
    status = 403
    title = "Permission denied"


class ExhaustedError(ConflictError):
    title = "Range exhausted"


class DriverError(MetalfleetError):
    """Raised by drivers when hardware refuses or fails; the conductor records it."""

    status = 502
    title = "Hardware error"


class TooManyRequestsError(MetalfleetError):
    """A caller went over a rate limit; ``retry_after_s`` becomes the Retry-After header."""

    status = 429
    title = "Too many requests"
