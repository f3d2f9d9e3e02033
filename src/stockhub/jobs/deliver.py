"""Delivering webhooks: claim due deliveries with leases, send them signed, record every attempt.

A delivery is claimable when its `next_attempt_at` has come: a pending one when it is due, a
delivering one when its lease lapsed (its worker died mid-request: it is sent again, at least
once). Claims take `FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of workers share the
queue and no attempt is sent by two of them at once. Requests go out concurrently from one
asyncio loop (outbound.Sender: keep-alive per receiver, the address rules on every connection)
so one slow receiver does not hold up the worker's other work: an attempt ends within
`webhook_timeout_seconds` in all, and one subscription holds at most its share of the senders
(`webhook_concurrency` requests in flight per worker).

Messages follow Standard Webhooks: `webhook-id` is the event's id (stable across retries, to
de-duplicate), `webhook-timestamp` the attempt's time, `webhook-signature` one `v1,…` per
valid secret (two during a rotation's grace period).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Integer, bindparam, column, func, literal, select, text, union_all

from stockhub import logs, metrics, outbound, representations
from stockhub.db.engine import is_postgres, transaction
from stockhub.db.flights import Flight, one_of, send_rows
from stockhub.db.tables import as_stored, events, webhook_attempts, webhook_deliveries, webhook_subscriptions
from stockhub.domain.webhooks import Verdict, parse_retry_after, retry_delay, verdict
from stockhub.services import webhooks
from stockhub.services.context import Hub
from stockhub.services.events import HEADERS, changes_in, changes_of
from stockhub.timefmt import iso

log = logging.getLogger(__name__)

EXCERPT_BYTES = outbound.EXCERPT_BYTES
RECORD_BATCH = 500
_STOP = object()
USER_AGENT = "stockhub-webhooks/1"


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscription_id: int
    attempts: int  # including this one
    url: str
    keys: list[bytes]
    message_id: str
    body: bytes  # the event's JSON, rendered once per claim however many deliveries it has


@dataclass(frozen=True)
class Answer:
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None
    retry_after: str | None


def claim_deliveries(hub: Hub, worker_id: str, limit: int, busy: Counter | None = None) -> list[Claimed]:
    """Up to `limit` due deliveries, leased to this worker, with what sending them needs
    (`_claimable` says which are taken). `busy`: this worker's deliveries in hand per subscription."""
    now = datetime.now(UTC)
    lease_until = now + timedelta(seconds=hub.settings.webhook_lease_seconds)
    if is_postgres(hub.engine) and busy is not None:
        return _claimed_postgres(hub, worker_id, limit, busy, now, lease_until)
    d = webhook_deliveries.c
    with transaction(hub.engine) as conn:
        chosen, lapsed_seen = _claimable(conn, worker_id, now, share_per_subscription(hub.settings), limit, busy)
        if not chosen:
            return []
        # one statement takes them: those still due and not locked by another worker's claim
        free = select(d.id).where(d.id.in_(chosen), d.next_attempt_at <= now).with_for_update(skip_locked=True)
        taken = conn.execute(
            webhook_deliveries.update()
            .where(d.id.in_(free.scalar_subquery()))
            .values(status="delivering", worker_id=worker_id, lease_until=lease_until, next_attempt_at=lease_until, attempts=d.attempts + 1)
            .returning(d.id, d.subscription_id, d.attempts, d.event_id)
        ).all()
        if not taken:
            return []
        # lapsed leases: still due now, so no worker recorded them since (a recorded retry is due later)
        lapsed = [row.id for row in taken if row.id in lapsed_seen]
        if lapsed:
            conn.execute(
                webhook_attempts.insert(),
                [{"delivery_id": n, "attempted_at": now, "error": "no answer recorded: the worker stopped mid-delivery (lease expired)"} for n in lapsed],
            )
        s = webhook_subscriptions.c
        # each delivery's receiver and event in one read (an event's columns keep their names, for rendering)
        joined = conn.execute(
            select(d.id.label("delivery_id"), s.url, s.secret_salt, s.previous_secret_salt, s.previous_secret_expires_at, *HEADERS)
            .select_from(webhook_deliveries.join(webhook_subscriptions, s.id == d.subscription_id).join(events, events.c.id == d.event_id))
            .where(d.id.in_([row.id for row in taken]))
        ).all()
        subscriptions = {row.subscription_id: None for row in taken}
        by_delivery = {row.delivery_id: row for row in joined}
        for row in taken:
            subscriptions[row.subscription_id] = by_delivery[row.id]
        event_rows = list({row.id: row for row in joined}.values())
        changes = changes_of(conn, event_rows)
    rendered = {row.id: _rendered(row, changes.get(row.id, [])) for row in event_rows}
    keys: dict = {}  # per subscription: the same keys for all its deliveries in the claim
    for number, subscription in subscriptions.items():
        keys[number] = webhooks.signing_keys(hub, subscription, now)
    return [
        Claimed(
            delivery_id=row.id,
            subscription_id=row.subscription_id,
            attempts=row.attempts,
            url=subscriptions[row.subscription_id].url,
            keys=keys[row.subscription_id],
            message_id=rendered[row.event_id][0],
            body=rendered[row.event_id][1],
        )
        for row in sorted(taken, key=lambda row: row.id)
    ]


def _rendered(event, changes: list) -> tuple[str, bytes]:
    """An event's message id and body, rendered once per claim however many deliveries it has."""
    message = representations.event(event, changes)
    return message["id"], json.dumps(message, separators=(",", ":")).encode()


def _claimed_postgres(hub: Hub, worker_id: str, limit: int, busy: Counter, now: datetime, lease_until: datetime) -> list[Claimed]:
    """The claim on PostgreSQL: `_CLAIM_POSTGRES`, prepared once per connection, with its BEGIN and
    COMMIT in one round trip (db.flights). As `_claimable` and the statements after it on SQLite;
    those made 6 round trips, and PostgreSQL planned the compound select on every claim: a claim of
    16 deliveries took ~10 ms and capped each worker's delivery rate (docs/benchmarks.md)."""
    held = sorted(busy.items())
    params = {
        "now": now, "lease_until": lease_until, "worker": worker_id, "limit": limit, "share": share_per_subscription(hub.settings),
        "busy_ids": [number for number, _ in held], "busy_counts": [count for _, count in held],
    }
    with transaction(hub.engine) as conn:
        with Flight(conn) as flight:
            flight.generic_plans()
            taken = flight.send(_CLAIM_POSTGRES, params)
            flight.commit()
    rows = taken.rows()
    rendered = {row.id: _rendered(row, changes_in(row.changes)) for row in rows}
    keys = {row.subscription_id: webhooks.signing_keys(hub, row, now) for row in rows}
    return [
        Claimed(
            delivery_id=row.delivery_id,
            subscription_id=row.subscription_id,
            attempts=row.attempts,
            url=row.url,
            keys=keys[row.subscription_id],
            message_id=rendered[row.id][0],
            body=rendered[row.id][1],
        )
        for row in rows
    ]


def share_per_subscription(settings) -> int:
    """How many of a worker's senders one subscription may hold at once (a slow receiver holds no more)."""
    return settings.webhook_max_in_flight_per_subscription or max(2, settings.webhook_concurrency // 4)


def _claimable(conn, worker_id: str, now: datetime, share: int, limit: int, busy: Counter | None = None) -> tuple[list[int], set[int]]:
    """The deliveries to claim now, soonest due first, fairly across subscriptions.

    No subscription gets more than `share` of this worker's senders (its leased deliveries that have
    not lapsed), so one slow receiver cannot take them all: each active subscription is asked for
    its own due deliveries, up to its room (an index probe each, however long another's backlog).
    An ordered subscription's deliveries wait in line per store by the event's sequence: only the first unfinished one of each may go, so a failing event holds back its
    store's later events, for that subscription only. Deliveries whose lease lapsed (their worker
    died) go out again whatever their subscription's state.

    `busy`: this worker's deliveries in hand per subscription, when the caller keeps count (the
    Deliverer does); else they are read from the table. Returns the numbers, and which of them
    were found with a lapsed lease. The statements are built once per shape
    (how many subscriptions, which ordered) and reused with parameters: building and compiling a
    compound select of one part per subscription on every claim cost more than running it.
    """
    if busy is None:
        mine = conn.execute(_DELIVERING_MINE, {"now": now, "worker": worker_id}).all()
        busy = Counter(row.subscription_id for row in mine)
    parts, values = [], {"now": now}
    for subscription in conn.execute(_ACTIVE):
        room = share - busy[subscription.id]
        if room > 0:
            values[f"s{len(parts)}"], values[f"r{len(parts)}"] = subscription.id, min(room, limit)
            parts.append(bool(subscription.ordered))
    found, lapsed = {}, set()
    for start in range(0, max(len(parts), 1), 100):  # a compound select of at most 100 parts (and the lapsed ones, first)
        shape = tuple(parts[start : start + 100])
        chunk = {"now": now} | {f"{k}{i}": values[f"{k}{start + i}"] for i in range(len(shape)) for k in "sr"}
        for row in conn.execute(_compound(shape, with_lapsed=start == 0), chunk):
            found[row.id] = row.next_attempt_at
            if row.lapsed:
                lapsed.add(row.id)
    return sorted(found, key=lambda number: (found[number], number))[:limit], lapsed


_d = webhook_deliveries.c
_NOW = bindparam("now", type_=_d.next_attempt_at.type)
_ACTIVE = select(webhook_subscriptions.c.id, webhook_subscriptions.c.ordered).where(webhook_subscriptions.c.status == "active")
_LAPSED = select(_d.id, _d.next_attempt_at, literal(1).label("lapsed")).where(_d.status == "delivering", _d.lease_until <= _NOW)
_DELIVERING_MINE = select(_d.subscription_id).where(_d.status == "delivering", _d.lease_until > _NOW, _d.worker_id == bindparam("worker"))
_COMPOUNDS: dict[tuple, object] = {}


def _compound(shape: tuple[bool, ...], with_lapsed: bool):
    statement = _COMPOUNDS.get((shape, with_lapsed))
    if statement is None:
        if len(_COMPOUNDS) > 256:
            _COMPOUNDS.clear()
        branches = [_LAPSED] if with_lapsed else []
        for i, ordered in enumerate(shape):
            part = (_in_line if ordered else _soonest)(bindparam(f"s{i}", type_=_d.subscription_id.type), _NOW, bindparam(f"r{i}", type_=Integer()))
            branches.append(select(part.c.id, part.c.next_attempt_at, literal(0).label("lapsed")))
        statement = _COMPOUNDS[(shape, with_lapsed)] = union_all(*branches) if len(branches) > 1 else branches[0]
    return statement


_s, _e = webhook_subscriptions.c, events.c
# `_claimable` and the claim after it as one statement: each active subscription's room (its share
# less this worker's deliveries in hand), its due deliveries up to that room (an ordered one's: only
# those first in line for their store), with the lapsed leases; the soonest due up to the limit,
# locked unless another worker's claim holds them, leased; an attempt noted for each lapsed one;
# returned with their receivers and events. Timestamps are kept as UTC without a zone (db/tables.py).
_CLAIM_POSTGRES = (
    text(
        """
        WITH busy AS (
            SELECT * FROM unnest(CAST(:busy_ids AS bigint[]), CAST(:busy_counts AS integer[])) AS b(subscription_id, held)
        ), rooms AS (
            SELECT s.id, s.ordered, LEAST(:share - coalesce(b.held, 0), :limit) AS room
            FROM webhook_subscriptions s LEFT JOIN busy b ON b.subscription_id = s.id
            WHERE s.status = 'active'
        ), candidates AS (
            SELECT d.id, d.next_attempt_at, true AS lapsed FROM webhook_deliveries d
            WHERE d.status = 'delivering' AND d.lease_until <= :now
            UNION ALL
            SELECT c.id, c.next_attempt_at, false FROM rooms r CROSS JOIN LATERAL (
                SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                WHERE d.subscription_id = r.id AND d.next_attempt_at <= :now
                ORDER BY d.next_attempt_at LIMIT r.room
            ) c WHERE r.room > 0 AND NOT r.ordered
            UNION ALL
            SELECT c.id, c.next_attempt_at, false FROM rooms r CROSS JOIN LATERAL (
                SELECT u.id, u.next_attempt_at FROM (
                    SELECT d.id, d.next_attempt_at, row_number() OVER (PARTITION BY e.store_id ORDER BY e.sequence, e.id) AS place
                    FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
                    WHERE d.subscription_id = r.id AND d.next_attempt_at IS NOT NULL
                ) u WHERE u.place = 1 AND u.next_attempt_at <= :now
                ORDER BY u.next_attempt_at LIMIT r.room
            ) c WHERE r.room > 0 AND r.ordered
        ), chosen AS (
            SELECT id, bool_or(lapsed) AS lapsed, min(next_attempt_at) AS due FROM candidates
            GROUP BY id ORDER BY due, id LIMIT :limit
        ), free AS (
            SELECT d.id FROM webhook_deliveries d WHERE d.id IN (SELECT id FROM chosen) AND d.next_attempt_at <= :now
            FOR UPDATE SKIP LOCKED
        ), taken AS (
            UPDATE webhook_deliveries d
            SET status = 'delivering', worker_id = :worker, lease_until = :lease_until, next_attempt_at = :lease_until, attempts = d.attempts + 1
            FROM free WHERE d.id = free.id
            RETURNING d.id, d.subscription_id, d.attempts, d.event_id
        ), noted AS (
            INSERT INTO webhook_attempts (delivery_id, attempted_at, error)
            SELECT taken.id, :now, 'no answer recorded: the worker stopped mid-delivery (lease expired)'
            FROM taken JOIN chosen ON chosen.id = taken.id WHERE chosen.lapsed
        )
        SELECT taken.id AS delivery_id, taken.subscription_id, taken.attempts,
               s.url, s.secret_salt, s.previous_secret_salt, s.previous_secret_expires_at,
               e.id, e.organization_id, e.store_id, e.type, e.sequence, e.occurred_at, e.data, e.change_count, e.partner_id, e.changes
        FROM taken JOIN webhook_subscriptions s ON s.id = taken.subscription_id JOIN events e ON e.id = taken.event_id
        ORDER BY taken.id
        """
    )
    .bindparams(
        bindparam("now", type_=_d.next_attempt_at.type),
        bindparam("lease_until", type_=_d.lease_until.type),
        bindparam("worker", type_=_d.worker_id.type),
    )
    .columns(
        column("delivery_id", BigInteger), column("subscription_id", BigInteger), column("attempts", Integer),
        _s.url, _s.secret_salt, _s.previous_secret_salt, _s.previous_secret_expires_at,
        _e.id, _e.organization_id, _e.store_id, _e.type, _e.sequence, _e.occurred_at, _e.data, _e.change_count, _e.partner_id, _e.changes,
    )
)


def _soonest(subscription, now, room):
    d = webhook_deliveries.c
    part = select(d.id, d.next_attempt_at).where(d.subscription_id == subscription, d.next_attempt_at <= now).order_by(d.next_attempt_at).limit(room)
    return part.subquery()


def _in_line(subscription, now, room):
    """An ordered subscription's due deliveries that are first in line for their store."""
    d, e = webhook_deliveries.c, events.c
    # by sequence (gaps do not matter); a delivery is in line once its event is numbered (next_attempt_at set)
    place = func.row_number().over(partition_by=e.store_id, order_by=(e.sequence, e.id))
    unfinished = (
        select(d.id, d.next_attempt_at, place.label("place"))
        .join(events, e.id == d.event_id)
        .where(d.subscription_id == subscription, d.next_attempt_at.is_not(None))
        .subquery()
    )
    part = select(unfinished.c.id, unfinished.c.next_attempt_at).where(unfinished.c.place == 1, unfinished.c.next_attempt_at <= now)
    return part.order_by(unfinished.c.next_attempt_at).limit(room).subquery()


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `v1,` signature, as `standardwebhooks.Webhook(key).sign` makes it
    (tests/unit/test_webhook_rules.py checks they agree), without its per-call datetime work."""
    digest = hmac.new(key, b"%s.%d.%s" % (message_id.encode(), timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers_for(claimed: Claimed, timestamp: int) -> bytes:
    """The request's headers but its length and host, as b"name: value\\r\\n" lines."""
    signature = " ".join(sign(key, claimed.message_id, timestamp, claimed.body) for key in claimed.keys)
    return (
        f"content-type: application/json\r\nuser-agent: {USER_AGENT}\r\nwebhook-id: {claimed.message_id}\r\n"
        f"webhook-timestamp: {timestamp}\r\nwebhook-signature: {signature}\r\n"
    ).encode()


async def send(sender: outbound.Sender, claimed: Claimed, total_seconds: float) -> Answer:
    """One attempt, over within `total_seconds` however slowly the receiver answers."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    status = excerpt = error = retry_after = None
    try:
        reply = await sender.post(claimed.url, headers_for(claimed, int(now.timestamp())), claimed.body, total_seconds)
        status, retry_after, excerpt = reply.status_code, reply.retry_after, reply.excerpt.decode("utf-8", errors="replace")
    except outbound.RequestTimedOut:
        error = f"timed out (ReadTimeout): no complete answer within {total_seconds:g} s"
    except outbound.RequestFailed as failure:
        error = str(failure)[:500]
    latency = int((time.perf_counter() - started) * 1000)
    return Answer(now, status, latency, excerpt, error, retry_after)


def record(hub: Hub, worker_id: str, answered: list[tuple[Claimed, Answer]]) -> None:
    """Keep the attempts; then finish each delivery, schedule its retry, or hold it (only while it is
    still ours: a lapsed lease means another worker owns it now). One transaction for the lot: on
    PostgreSQL two round trips (the attempts written and the subscriptions read, then the
    deliveries' states with the COMMIT), its statements prepared once per connection."""
    now = datetime.now(UTC)
    attempts = [
        {
            "delivery_id": claimed.delivery_id,
            "attempted_at": answer.attempted_at,
            "status_code": answer.status_code,
            "latency_ms": answer.latency_ms,
            "response_excerpt": answer.excerpt,
            "error": answer.error,
            "worker_id": worker_id,
        }
        for claimed, answer in answered
    ]
    subscription_ids = sorted({claimed.subscription_id for claimed, _ in answered})
    with transaction(hub.engine) as conn:
        with Flight(conn) as flight:
            flight.generic_plans()
            send_rows(flight, webhook_attempts, attempts)
            found = flight.send(_SUBSCRIPTION_STATES[is_postgres(conn)], {"ids": subscription_ids})
        subscriptions = {row.id: row for row in found.rows()}
        changes = [_next_state(hub, claimed, answer, subscriptions[claimed.subscription_id].status, now) for claimed, answer in answered]
        for number, outcomes in _by_subscription(answered).items():
            _note_outcomes(hub, conn, number, subscriptions[number], outcomes, now)
        with Flight(conn) as flight:  # PostgreSQL: the deliveries' states go with the COMMIT
            _finish(conn, worker_id, changes, flight)
            flight.commit()
    for _, answer in answered:
        metrics.WEBHOOK_ATTEMPTS.labels("error" if answer.status_code is None else verdict(answer.status_code).value).inc()


_SUBSCRIPTION_STATES = {postgres: select(_s.id, _s.status, _s.failing_since).where(one_of(_s.id, "ids", postgres)) for postgres in (True, False)}

def _finish(conn, worker_id: str, changes: list[dict], flight: Flight) -> None:
    """The deliveries' new states, each only while still this worker's attempt. PostgreSQL: one
    statement for the lot (arrays unnested), sent in `flight`; SQLite: one statement per delivery
    (in process)."""
    d = webhook_deliveries.c
    if conn.dialect.name == "postgresql":
        column = lambda name: [as_stored(change[name]) for change in changes]  # noqa: E731
        flight.send(
            _FINISH_POSTGRES,
            {
                "ids": column("b_id"),
                "attempts": column("b_attempts"),
                "statuses": column("b_status"),
                "nexts": column("b_next"),
                "finished": column("b_finished"),
                "codes": column("b_code"),
                "errors": column("b_error"),
                "worker": worker_id,
            },
        )
        return
    conn.execute(
        webhook_deliveries.update()
        .where(d.id == bindparam("b_id"), d.attempts == bindparam("b_attempts"), d.worker_id == worker_id, d.status == "delivering")
        .values(
            status=bindparam("b_status"),
            next_attempt_at=bindparam("b_next", type_=d.next_attempt_at.type),
            lease_until=None,
            finished_at=bindparam("b_finished", type_=d.finished_at.type),
            last_status_code=bindparam("b_code", type_=d.last_status_code.type),
            last_error=bindparam("b_error", type_=d.last_error.type),
        ),
        changes,
    )


# the same update as SQLite's, for many deliveries in one statement (timestamps are stored as UTC without a zone, db/tables.py)
_FINISH_POSTGRES = text(
    """
    UPDATE webhook_deliveries AS d
    SET status = a.status, next_attempt_at = a.next_at, lease_until = NULL, finished_at = a.finished_at,
        last_status_code = a.code, last_error = a.error
    FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:statuses AS varchar[]), CAST(:nexts AS timestamp[]),
                CAST(:finished AS timestamp[]), CAST(:codes AS integer[]), CAST(:errors AS text[]))
         AS a(id, attempts, status, next_at, finished_at, code, error)
    WHERE d.id = a.id AND d.attempts = a.attempts AND d.worker_id = :worker AND d.status = 'delivering'
    """
)


def _next_state(hub: Hub, claimed: Claimed, answer: Answer, subscription_status: str, now: datetime) -> dict:
    outcome = verdict(answer.status_code)
    error = answer.error or (None if outcome is Verdict.SUCCEEDED else f"HTTP {answer.status_code}")
    state = {"b_id": claimed.delivery_id, "b_attempts": claimed.attempts, "b_code": answer.status_code, "b_error": error}
    finished = state | {"b_next": None, "b_finished": now}
    if outcome is Verdict.SUCCEEDED:
        return finished | {"b_status": "succeeded"}
    delay = retry_delay(claimed.attempts, hub.settings.webhook_retry_schedule, parse_retry_after(answer.retry_after, now))
    if outcome is not Verdict.RETRY or delay is None:
        return finished | {"b_status": "failed"}
    if subscription_status == "deleted":
        return finished | {"b_status": "cancelled"}
    if subscription_status != "active":  # paused or disabled meanwhile: kept until resumed
        return state | {"b_status": "held", "b_next": None, "b_finished": None}
    return state | {"b_status": "pending", "b_next": now + timedelta(seconds=delay), "b_finished": None}


def _by_subscription(answered: list[tuple[Claimed, Answer]]) -> dict[int, list[tuple[Verdict, Answer]]]:
    found: dict[int, list[tuple[Verdict, Answer]]] = {}
    for claimed, answer in answered:
        found.setdefault(claimed.subscription_id, []).append((verdict(answer.status_code), answer))
    return found


def _note_outcomes(hub: Hub, conn, number: int, subscription, outcomes: list, now: datetime) -> None:
    """A 410 disables the subscription; a success ends a failing spell; failing for too long disables it."""
    if subscription.status != "active":
        return
    if any(outcome is Verdict.GONE for outcome, _ in outcomes):
        webhooks.disable(conn, number, f"the receiver answered 410 Gone at {iso(now)}: it asked for no more deliveries", now)
        return
    where = webhook_subscriptions.update().where(webhook_subscriptions.c.id == number)
    if any(outcome is Verdict.SUCCEEDED for outcome, _ in outcomes):
        if subscription.failing_since is not None:
            conn.execute(where.values(failing_since=None))
        return
    since = subscription.failing_since
    if since is None:
        conn.execute(where.values(failing_since=now))
    elif (now - since).total_seconds() >= hub.settings.webhook_disable_after_seconds:
        _, answer = outcomes[-1]
        last = answer.error or f"HTTP {answer.status_code}"
        webhooks.disable(conn, number, f"every delivery has failed since {iso(since)}; the last: {last}", now)


class Deliverer:
    """The worker's webhook side: claims as many deliveries as it has free senders and sends them
    all at once from one asyncio loop (its own thread); one recorder thread writes the answers, as
    many as have arrived, per transaction, and a claimer thread claims as many more as senders are
    free meanwhile, so a busy queue flows without going round the worker's whole loop and a claim
    overlaps the recording of the batch before (`stopping` set: no more claims)."""

    def __init__(self, hub: Hub, worker_id: str, stopping: threading.Event | None = None):
        self.hub = hub
        self.worker_id = worker_id
        self.capacity = hub.settings.webhook_concurrency  # requests in flight at once
        # Claimed ahead: more deliveries than senders are held, waiting for one, so a claim's round
        # trips overlap the sending instead of following it, and claims are bigger. As many times
        # the senders as keeps a delivery that waits behind requests each taking the whole timeout
        # well within its lease (defaults: 60 s lease, 15 s timeout: 3x), at most 4x.
        settings = hub.settings
        ahead = int((settings.webhook_lease_seconds - 10) // max(settings.webhook_timeout_seconds, 1))
        self.holding = self.capacity * min(max(ahead, 1), 4)
        self._senders: asyncio.Semaphore | None = None
        self._closing = False  # no new request starts (those waiting for a sender are dropped)
        self._stopping = stopping or threading.Event()
        self._held = 0  # claimed, not yet recorded
        self._held_per_subscription: Counter = Counter()
        self._lock = threading.Lock()
        self._claiming = threading.Lock()  # one claim at a time: the worker's loop or the claimer
        self._freed = threading.Event()  # senders were freed: the claimer looks for more
        self._claimer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._sender = outbound.Sender(hub.settings)
        self._tasks: set[asyncio.Task] = set()
        self._answers: queue.Queue = queue.Queue()
        self._recorder: threading.Thread | None = None

    def deliver_due(self) -> int:
        """Claim due deliveries up to the free senders and start sending them; returns how many."""
        if self._stopping.is_set() or not self._claiming.acquire(blocking=False):
            return 0
        try:
            return self._claim_and_send()
        finally:
            self._claiming.release()

    def _claim_and_send(self) -> int:
        with self._lock:
            free = self.holding - self._held
        if free < max(self.capacity // 2, 1):
            return 0  # claim in batches: a claim costs a transaction however few rows it takes
        with self._lock:
            busy = +self._held_per_subscription
        claimed = claim_deliveries(self.hub, self.worker_id, free, busy)
        if not claimed:
            return 0
        if self._recorder is None:
            self._recorder = threading.Thread(target=self._record_answers, name="stockhub-webhook-recorder", daemon=True)
            self._recorder.start()
            self._claimer = threading.Thread(target=self._claim_when_freed, name="stockhub-webhook-claimer", daemon=True)
            self._claimer.start()
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(target=self._loop.run_forever, name="stockhub-webhook-sender", daemon=True)
            self._loop_thread.start()
        with self._lock:
            self._held += len(claimed)
            self._held_per_subscription.update(delivery.subscription_id for delivery in claimed)
        self._loop.call_soon_threadsafe(self._start_sending, claimed)
        return len(claimed)

    def _start_sending(self, claimed: list[Claimed]) -> None:
        for delivery in claimed:
            task = self._loop.create_task(self._send(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, claimed: Claimed) -> None:
        if self._senders is None:
            self._senders = asyncio.Semaphore(self.capacity)
        try:
            with logs.bound(worker_id=self.worker_id, delivery_id=claimed.delivery_id):
                async with self._senders:
                    if self._closing:
                        return  # closing: not sent; the lease lapses and another worker sends it
                    answer = await send(self._sender, claimed, self.hub.settings.webhook_timeout_seconds)
        except Exception:
            log.exception("webhook delivery %s failed; its lease will lapse and it is sent again", claimed.delivery_id)
            answer = None
        self._answers.put((claimed, answer))

    def _record_answers(self) -> None:
        while True:
            batch = [self._answers.get()]
            while len(batch) < RECORD_BATCH:
                try:
                    batch.append(self._answers.get_nowait())
                except queue.Empty:
                    break
            stopping = _STOP in batch
            answered = [item for item in batch if item is not _STOP and item[1] is not None]
            try:
                if answered:
                    record(self.hub, self.worker_id, answered)
            except Exception:
                log.exception("recording %d webhook attempts failed; their leases will lapse and they are sent again", len(answered))
            with self._lock:
                self._held -= len(batch) - stopping
                self._held_per_subscription.subtract(item[0].subscription_id for item in batch if item is not _STOP)
            self._freed.set()  # senders are free: the claimer takes the next due deliveries at once
            if stopping:
                return

    def _claim_when_freed(self) -> None:
        while True:
            self._freed.wait()
            self._freed.clear()
            if self._stopping.is_set() or self._recorder is None:
                return
            try:
                self.deliver_due()
            except Exception:
                log.exception("claiming webhook deliveries failed")
                self.hub.ring()  # the worker's loop tries again

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._held == 0

    def _stop_sending(self, wait: bool) -> None:
        """End the loop: with `wait`, once the requests in flight are over (each is bounded by its
        deadline); else at once, the requests in flight cancelled (their answers not recorded)."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def finish() -> None:
            if not wait:
                for task in list(self._tasks):
                    task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._sender.close()

        try:
            asyncio.run_coroutine_threadsafe(finish(), loop).result(self.hub.settings.webhook_timeout_seconds + 10)
        except Exception:
            log.exception("stopping the webhook sender")
        loop.call_soon_threadsafe(loop.stop)
        self._loop_thread.join(10)
        if not self._loop_thread.is_alive():
            loop.close()

    def drain(self, deadline: float) -> None:
        """Stopping: wait for the requests in flight until `deadline` (time.monotonic()), record
        their answers, then stop; answers arriving later are not recorded (the worker gives those
        deliveries back, jobs/queue.release_held)."""
        while not self.idle and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop_sending(wait=False)
        if self._recorder is not None:
            self._answers.put(_STOP)
            self._recorder.join(10)
            self._recorder = None
        self._end_claimer()

    def close(self) -> None:
        self._closing = True
        self._stop_sending(wait=True)
        if self._recorder is not None:
            self._answers.put(_STOP)
            self._recorder.join()
            self._recorder = None
        self._end_claimer()

    def _end_claimer(self) -> None:
        claimer, self._claimer = self._claimer, None
        if claimer is not None:
            self._stopping.set()
            self._freed.set()
            claimer.join(30)
