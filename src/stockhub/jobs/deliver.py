"""Delivering webhooks: claim due deliveries with leases, send them signed, record every attempt.

A delivery is claimable when its `next_attempt_at` has come: a pending one when it is due, a
delivering one when its lease lapsed (its worker died mid-request: it is sent again, at least
once). Claims take `FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of workers share the
queue and no attempt is sent by two of them at once. Requests go out from a small thread pool
so one slow receiver does not hold up the worker's other work.

Messages follow Standard Webhooks: `webhook-id` is the event's id (stable across retries, to
de-duplicate), `webhook-timestamp` the attempt's time, `webhook-signature` one `v1,…` per
valid secret (two during a rotation's grace period).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx2
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from stockhub import outbound
from stockhub.db.engine import transaction
from stockhub.db.tables import events, webhook_attempts, webhook_deliveries, webhook_subscriptions
from stockhub.domain.webhooks import Verdict, parse_retry_after, retry_delay, verdict
from stockhub.services import webhooks
from stockhub.services.context import Hub
from stockhub.services.events import render_events
from stockhub.timefmt import iso

log = logging.getLogger(__name__)

EXCERPT_BYTES = 1000
USER_AGENT = "stockhub-webhooks/1"


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscription_id: int
    attempts: int  # including this one
    url: str
    keys: list[bytes]
    message_id: str
    body: str


@dataclass(frozen=True)
class Answer:
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None
    retry_after: str | None


def claim_deliveries(hub: Hub, worker_id: str, limit: int) -> list[Claimed]:
    now = datetime.now(UTC)
    lease_until = now + timedelta(seconds=hub.settings.webhook_lease_seconds)
    d = webhook_deliveries.c
    with transaction(hub.engine) as conn:
        due = conn.execute(
            select(d.id, d.status)
            .where(d.next_attempt_at <= now)
            .order_by(d.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not due:
            return []
        lapsed = [row.id for row in due if row.status == "delivering"]
        if lapsed:
            conn.execute(
                webhook_attempts.insert(),
                [{"delivery_id": n, "attempted_at": now, "error": "no answer recorded: the worker stopped mid-delivery (lease expired)"} for n in lapsed],
            )
        numbers = [row.id for row in due]
        conn.execute(
            webhook_deliveries.update()
            .where(d.id.in_(numbers))
            .values(status="delivering", worker_id=worker_id, lease_until=lease_until, next_attempt_at=lease_until, attempts=d.attempts + 1)
        )
        s = webhook_subscriptions.c
        rows = conn.execute(
            select(d.id, d.subscription_id, d.attempts, d.event_id, s.url, s.secret_salt, s.previous_secret_salt, s.previous_secret_expires_at)
            .join(webhook_subscriptions, s.id == d.subscription_id)
            .where(d.id.in_(numbers))
        ).all()
        event_rows = conn.execute(select(events).where(events.c.id.in_({row.event_id for row in rows}))).all()
        rendered = render_events(conn, event_rows)
    return [
        Claimed(
            delivery_id=row.id,
            subscription_id=row.subscription_id,
            attempts=row.attempts,
            url=row.url,
            keys=webhooks.signing_keys(hub, row, now),
            message_id=rendered[row.event_id]["id"],
            body=json.dumps(rendered[row.event_id], separators=(",", ":")),
        )
        for row in rows
    ]


def send(client: httpx2.Client, claimed: Claimed) -> Answer:
    now = datetime.now(UTC)
    signature = " ".join(Webhook(key).sign(claimed.message_id, now, claimed.body) for key in claimed.keys)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": claimed.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    started = time.perf_counter()
    status = excerpt = error = retry_after = None
    try:
        with client.stream("POST", claimed.url, content=claimed.body.encode(), headers=headers) as response:
            status, retry_after = response.status_code, response.headers.get("retry-after")
            excerpt = _excerpt(response)
    except httpx2.TimeoutException as timeout:
        error = f"timed out ({type(timeout).__name__})"
    except httpx2.HTTPError as failure:
        error = f"{type(failure).__name__}: {failure}"[:500]
    latency = int((time.perf_counter() - started) * 1000)
    return Answer(now, status, latency, excerpt, error, retry_after)


def _excerpt(response: httpx2.Response) -> str:
    """The first bytes of the answer: enough to show people, never a receiver's whole page."""
    taken = bytearray()
    for chunk in response.iter_raw():
        taken += chunk
        if len(taken) >= EXCERPT_BYTES:
            break
    return bytes(taken[:EXCERPT_BYTES]).decode("utf-8", errors="replace")


def record(hub: Hub, worker_id: str, claimed: Claimed, answer: Answer) -> None:
    """Keep the attempt; then finish the delivery, schedule its retry, or hold it (only if it is still ours)."""
    now = datetime.now(UTC)
    outcome = verdict(answer.status_code)
    error = answer.error or (None if outcome is Verdict.SUCCEEDED else f"HTTP {answer.status_code}")
    d, s = webhook_deliveries.c, webhook_subscriptions.c
    with transaction(hub.engine) as conn:
        conn.execute(
            webhook_attempts.insert().values(
                delivery_id=claimed.delivery_id,
                attempted_at=answer.attempted_at,
                status_code=answer.status_code,
                latency_ms=answer.latency_ms,
                response_excerpt=answer.excerpt,
                error=answer.error,
                worker_id=worker_id,
            )
        )
        subscription = conn.execute(select(s.status, s.failing_since).where(s.id == claimed.subscription_id)).one()
        ours = webhook_deliveries.update().where(
            d.id == claimed.delivery_id, d.worker_id == worker_id, d.status == "delivering", d.attempts == claimed.attempts
        )
        finished = {"next_attempt_at": None, "lease_until": None, "finished_at": now, "last_status_code": answer.status_code, "last_error": error}
        if outcome is Verdict.SUCCEEDED:
            conn.execute(ours.values(status="succeeded", **finished))
            if subscription.failing_since is not None:
                conn.execute(webhook_subscriptions.update().where(s.id == claimed.subscription_id).values(failing_since=None))
            return
        if outcome is Verdict.RETRY and (delay := _delay(hub, claimed, answer, now)) is not None:
            if subscription.status == "deleted":
                conn.execute(ours.values(status="cancelled", **finished))
            else:
                active = subscription.status == "active"
                conn.execute(
                    ours.values(
                        status="pending" if active else "held",
                        next_attempt_at=now + timedelta(seconds=delay) if active else None,
                        lease_until=None,
                        last_status_code=answer.status_code,
                        last_error=error,
                    )
                )
        else:
            conn.execute(ours.values(status="failed", **finished))
        _note_failure(hub, conn, claimed.subscription_id, subscription, outcome, error, now)


def _delay(hub: Hub, claimed: Claimed, answer: Answer, now: datetime) -> float | None:
    return retry_delay(claimed.attempts, hub.settings.webhook_retry_schedule, parse_retry_after(answer.retry_after, now))


def _note_failure(hub: Hub, conn, subscription_id: int, subscription, outcome: Verdict, error: str, now: datetime) -> None:
    if subscription.status != "active":
        return
    if outcome is Verdict.GONE:
        webhooks.disable(conn, subscription_id, f"the receiver answered 410 Gone at {iso(now)}: it asked for no more deliveries", now)
        return
    since = subscription.failing_since
    if since is None:
        conn.execute(webhook_subscriptions.update().where(webhook_subscriptions.c.id == subscription_id).values(failing_since=now))
    elif (now - since).total_seconds() >= hub.settings.webhook_disable_after_seconds:
        webhooks.disable(conn, subscription_id, f"every delivery has failed since {iso(since)}; the last: {error}", now)


class Deliverer:
    """The worker's webhook side: claims as many deliveries as it has free senders, sends them in threads."""

    def __init__(self, hub: Hub, worker_id: str):
        self.hub = hub
        self.worker_id = worker_id
        self.capacity = hub.settings.webhook_concurrency
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix="stockhub-webhook")
        self._client = outbound.client(hub.settings, max_connections=self.capacity)

    def deliver_due(self) -> int:
        """Claim due deliveries up to the free senders and start sending them; returns how many."""
        with self._lock:
            free = self.capacity - self._in_flight
        if free <= 0:
            return 0
        claimed = claim_deliveries(self.hub, self.worker_id, free)
        for delivery in claimed:
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._deliver, delivery)
        return len(claimed)

    def _deliver(self, claimed: Claimed) -> None:
        try:
            record(self.hub, self.worker_id, claimed, send(self._client, claimed))
        except Exception:
            log.exception("webhook delivery %s failed; its lease will lapse and it is sent again", claimed.delivery_id)
        finally:
            with self._lock:
                self._in_flight -= 1
            self.hub.work_arrived.set()  # a sender is free

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._in_flight == 0

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
