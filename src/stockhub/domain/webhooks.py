"""Events and webhook delivery rules: the event types, what an answer means, when to try again,
and which receiver addresses are allowed. Plain Python, no I/O."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

EVENT_TYPES = (
    "inventory.updated",
    "upload.processed",
    "order.created",
    "order.updated",
    "product.updated",
    "store.connected",
    "store.status_changed",
    "location_group.updated",
    "feed.fetch_failed",
)
INVENTORY_BATCH = 500  # changes per inventory.updated event, so per delivery
JITTER = 0.2  # a retry waits its scheduled delay ±20%, so receivers coming back are not stampeded


class Verdict(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"  # network error, timeout, 5xx, 429
    GONE = "gone"  # 410: the receiver asks us to stop; the subscription is disabled
    REFUSED = "refused"  # any other answer: not retried (the delivery can be retried by hand)


def verdict(status_code: int | None) -> Verdict:
    """What an attempt's answer means; None is a network error or timeout."""
    if status_code is None or status_code == 429 or status_code >= 500:
        return Verdict.RETRY
    if 200 <= status_code < 300:
        return Verdict.SUCCEEDED
    if status_code == 410:
        return Verdict.GONE
    return Verdict.REFUSED


def retry_delay(
    attempts: int, schedule: list[float], retry_after: float | None = None, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones, or None when the schedule is spent.

    `schedule[i]` is the delay before attempt i+1 (the first is immediate). A receiver's
    Retry-After is honoured: never sooner than it asks.
    """
    if attempts >= len(schedule):
        return None
    delay = schedule[attempts] * (1 + (rng or random).uniform(-JITTER, JITTER))
    return max(delay, retry_after or 0.0)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP date); None when absent or malformed."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


@dataclass(frozen=True)
class AddressPolicy:
    allow_loopback: bool = False
    allow_private: bool = False

    def refusal(self, address: str) -> str | None:
        """Why a receiver at this IP address is refused (no SSRF), or None when it is allowed."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            return None if self.allow_loopback else f"{ip} is a loopback address"
        if ip.is_unspecified or ip.is_multicast:
            return f"{ip} is not a unicast address"
        if ip.is_link_local:
            return None if self.allow_private else f"{ip} is a link-local address"
        if not ip.is_global:
            return None if self.allow_private else f"{ip} is a private or reserved address"
        return None
