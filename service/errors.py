"""Errors of the service layer, each mapped to one HTTP problem by the API.

They know nothing of HTTP beyond the status they stand for, so the same
functions serve the API, the worker and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Conflict",
    "FieldError",
    "Invalid",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ServiceError",
    "Unauthorized",
]


@dataclass
class FieldError:
    """One problem with one field: ``pointer`` is a JSON Pointer into the body (``#/data/3/1``)."""

    pointer: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.detail}


@dataclass
class ServiceError(Exception):
    detail: str
    status: int = 500
    title: str = "Internal Server Error"
    type: str = "about:blank"
    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return self.detail


class NotFound(ServiceError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, 404, "Not Found", "/problems/not-found")


class Conflict(ServiceError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, 409, "Conflict", "/problems/conflict")


class Invalid(ServiceError):
    """422: the request is well-formed but its content is wrong."""

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(
            detail, 422, "Unprocessable Content", "/problems/validation", list(errors or [])
        )


class PayloadTooLarge(ServiceError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, 413, "Content Too Large", "/problems/too-large")


class Unauthorized(ServiceError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, 401, "Unauthorized", "/problems/unauthorized")


class PreconditionFailed(ServiceError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, 412, "Precondition Failed", "/problems/precondition-failed")
