"""What services raise when a request cannot be served; the faces render them (RFC 9457 in the API)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FieldError:
    field: str
    message: str
    row: int | None = None


@dataclass
class Problem(Exception):
    status: int
    title: str
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.title}: {self.detail}" if self.detail else self.title


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"{what} was not found")


def invalid(detail: str, errors: list[FieldError] | None = None) -> Problem:
    return Problem(422, "Invalid request", detail, errors or [])


def conflict(detail: str, **extra) -> Problem:
    return Problem(409, "Conflict", detail, extra=extra)
