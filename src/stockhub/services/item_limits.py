"""Daily item-update limits per organization (a plan's allowance, as Jetti counts inventory feed
variants updated per day): the one place that counts and decides.

The limit is `organizations.daily_item_limit`, else the `DAILY_ITEM_LIMIT` setting; none of
either: unlimited. Days are UTC days. A pushed item over the limit is refused (429 with
Retry-After until the next UTC midnight) and not counted; files (uploads, pulled documents)
are applied in full, count every row, and are told when the limit is passed.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Connection, select

from stockhub import ids
from stockhub.db.engine import transaction, upsert
from stockhub.db.tables import item_update_counts, organizations
from stockhub.errors import LimitReached, not_found
from stockhub.settings import Settings
from stockhub.timefmt import iso


def limit_of(conn: Connection, settings: Settings, organization: int) -> int | None:
    own = conn.execute(select(organizations.c.daily_item_limit).where(organizations.c.id == organization)).scalar()
    return own if own is not None else settings.daily_item_limit


def count(conn: Connection, settings: Settings, organization: int, items: int, now: datetime, *, refuse: bool) -> str | None:
    """Count `items` updates of today. `refuse`: raise LimitReached (nothing counted: the caller's
    transaction rolls back) when they would pass the limit; otherwise count them and return a
    warning when the day's total has passed it."""
    limit = limit_of(conn, settings, organization)
    if limit is None or items <= 0:
        return None
    day = now.astimezone(UTC).date()
    statement = upsert(conn, item_update_counts).values(organization_id=organization, day=day, count=items)
    statement = statement.on_conflict_do_update(
        index_elements=["organization_id", "day"], set_={"count": item_update_counts.c.count + statement.excluded.count}
    ).returning(item_update_counts.c.count)
    total = conn.execute(statement).scalar_one()
    if total <= limit:
        return None
    resets = datetime.combine(day + timedelta(days=1), time(0), UTC)
    if refuse:
        retry_after = max(int((resets - now).total_seconds()) + 1, 1)
        raise LimitReached(
            f"the organization's daily limit of {limit:,} item updates is reached; it resets at {iso(resets)}",
            extra={"limit": limit, "resets_at": iso(resets)},
            retry_after=retry_after,
        )
    return f"the organization's daily limit of {limit:,} item updates was passed ({total:,} today); the file was applied in full"


def used_today(conn: Connection, organization: int, now: datetime) -> int:
    day = now.astimezone(UTC).date()
    found = conn.execute(
        select(item_update_counts.c.count).where(item_update_counts.c.organization_id == organization, item_update_counts.c.day == day)
    ).scalar()
    return found or 0


def set_limit(hub, organization_id: str, limit: int | None) -> None:
    """The operator sets an organization's plan limit (None: the setting's default)."""
    number = ids.decode("organization", organization_id)
    with transaction(hub.engine) as conn:
        done = conn.execute(organizations.update().where(organizations.c.id == number).values(daily_item_limit=limit)).rowcount if number else 0
    if not done:
        raise not_found(f"organization {organization_id}")
