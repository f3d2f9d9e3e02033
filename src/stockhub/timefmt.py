"""Times at the edges: UTC, ISO 8601 with `Z`."""

from __future__ import annotations

from datetime import UTC, date, datetime


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()
