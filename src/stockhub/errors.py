"""What services raise when a request cannot be served, in the domain's words.

Services raise a `ServiceError` of one of the kinds below; each face renders it its own way:
the API as RFC 9457 problem details with the kind's HTTP status (api/problems.py), the FTP
gateway as a reply code, the CLI as a one-line message. `Problem` is for faces only: an error
that is already HTTP-shaped (a route's own refusal, or a ServiceError once rendered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class FieldError:
    field: str
    message: str
    row: int | None = None


@dataclass
class ServiceError(Exception):
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    title: ClassVar[str] = "Error"

    def __str__(self) -> str:
        return f"{self.title}: {self.detail}" if self.detail else self.title


class NotFound(ServiceError):
    """The thing does not exist, or the caller does not reach it (never told apart)."""

    title = "Not found"


class Malformed(ServiceError):
    """A parameter that cannot be read at all (a page token, an unknown filter value)."""

    title = "Bad request"


class Invalid(ServiceError):
    """Readable, but breaks a rule: the errors say which field and why."""

    title = "Invalid request"


class Conflict(ServiceError):
    """The request contradicts the current state (a stale count, an illegal order step, a reused key)."""

    title = "Conflict"


class InsufficientStock(Conflict):
    title = "Insufficient stock"


class Refused(ServiceError):
    """The caller is known but may not do this (an expired or revoked upload URL, the wrong kind of token)."""

    title = "Forbidden"


class TooLarge(ServiceError):
    title = "Payload too large"


@dataclass
class LimitReached(ServiceError):
    """A limit of how much the caller may do in a period is reached: retry after `retry_after` seconds."""

    retry_after: int = 0
    title: ClassVar[str] = "Too many requests"


@dataclass
class Problem(Exception):
    """An HTTP-shaped error, for faces (see the module's docstring)."""

    status: int
    title: str
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.title}: {self.detail}" if self.detail else self.title


def not_found(what: str) -> NotFound:
    return NotFound(f"{what} was not found")


def invalid(detail: str, errors: list[FieldError] | None = None) -> Invalid:
    return Invalid(detail, errors or [])


def conflict(detail: str, **extra) -> Conflict:
    return Conflict(detail, extra=extra)
