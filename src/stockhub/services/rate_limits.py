"""Rate limits of the HTTP API: per bearer token and per client address, in fixed windows.

`RATE_LIMIT_PER_TOKEN` (default 1200/minute: Otter's documented 20 requests/s) counts the
requests carrying one bearer token (by its HMAC, so an unknown token is counted too);
`RATE_LIMIT_PER_ADDRESS` (3000/minute) every request from one client address. Either may be
`off`. A request over either limit is refused whole (`LimitReached`, 429 with `Retry-After`);
it changes nothing.

Where counts live (`RATE_LIMIT_STORE`):

- `database` (the default on PostgreSQL): one row per (key, window) in `rate_limit_counters`,
  shared by every API node. A request is counted in memory and a background thread adds the
  process's counts to the rows within 0.1 s (one `INSERT … ON CONFLICT DO UPDATE … RETURNING`
  for every key counted meanwhile), learning the other nodes' counts from the totals: a
  request never waits for the database, and the nodes together can pass a limit by at most what
  the others counted in that 0.1 s. The table is UNLOGGED: the commit waits for no disk flush,
  and a crash merely restarts the windows.
- `memory` (the default on SQLite, the embedded single process): counted in the process, with
  no database write on every request (SQLite has one writer). A fleet on `memory` counts per
  node: divide the limits by the number of API nodes.

A window is fixed (e.g. each clock minute): at most the limit per window, so up to twice the
limit can pass in one window's length across a boundary — the price of one row per key.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from stockhub import security
from stockhub.db.engine import is_postgres, upsert
from stockhub.db.tables import rate_limit_counters
from stockhub.errors import LimitReached
from stockhub.settings import RATE, Settings

log = logging.getLogger(__name__)

PERIODS = {"second": 1, "minute": 60, "hour": 3600}


@dataclass(frozen=True)
class Rate:
    limit: int
    seconds: int


def parse_rate(text: str | None) -> Rate | None:
    """`600/minute` → Rate(600, 60); `off` or empty → None."""
    match = RATE.fullmatch((text or "off").strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a rate: write e.g. 600/minute, or off")
    if match.group(0) == "off":
        return None
    return Rate(int(match.group(1)), PERIODS[match.group(2)])


@dataclass(frozen=True)
class Verdict:
    """The tightest of the limits that applied: for the RateLimit-* headers."""

    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    reached: str | None = None  # "token" or "address" when refused


class Limiter:
    def __init__(self, settings: Settings, engine: Engine):
        self.secret = settings.secret
        self.rates = {"token": parse_rate(settings.rate_limit_per_token), "address": parse_rate(settings.rate_limit_per_address)}
        store = settings.rate_limit_store
        if store == "auto":
            store = "database" if is_postgres(engine) else "memory"
        self.counter = DatabaseCounter(engine) if store == "database" else MemoryCounter()

    @property
    def active(self) -> bool:
        return any(self.rates.values())

    def check(self, token: str | None, address: str | None, now: float | None = None) -> Verdict | None:
        """Count this request; the tightest limit's state, or LimitReached. None when no limit applies."""
        now = time.time() if now is None else now
        keys = []
        if token and (rate := self.rates["token"]):
            keys.append(("token", f"token:{security.bearer_hash(self.secret, token)[:40]}", rate))
        if address and (rate := self.rates["address"]):
            keys.append(("address", f"address:{address[:64]}", rate))
        if not keys:
            return None
        windows = [(key, int(now // rate.seconds) * rate.seconds, rate.seconds) for _, key, rate in keys]
        counts = self.counter.add(windows)
        verdicts = []
        for (kind, key, rate), (_, start, length) in zip(keys, windows):
            reset = max(1, int(start + length - now + 0.999))
            count = counts[key]
            verdicts.append(Verdict(rate.limit, max(0, rate.limit - count), reset, kind if count > rate.limit else None))
        refused = [v for v in verdicts if v.reached]
        if refused:
            worst = max(refused, key=lambda v: v.reset)
            raise LimitReached(
                f"too many requests per {worst.reached}: at most {worst.limit} per window; retry in {worst.reset} s",
                retry_after=worst.reset,
                extra={"limit": worst.reached},
            )
        return min(verdicts, key=lambda v: (v.remaining, -v.reset))


class MemoryCounter:
    def __init__(self):
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def add(self, windows: list[tuple[str, int, int]]) -> dict[str, int]:
        with self._lock:
            found = {}
            for key, start, _length in windows:
                count = self._counts.get((key, start), 0) + 1
                self._counts[(key, start)] = found[key] = count
            now = time.time()
            if now >= self._next_purge:  # forget windows that have passed
                self._counts = {k: v for k, v in self._counts.items() if k[1] + 3600 > now}
                self._next_purge = now + 60
            return found


SYNC_ROWS = 1000


class DatabaseCounter:
    """Counts every node shares, kept in `rate_limit_counters` and synced in the background.

    A request is counted in memory (no database round trip on the request's path: it was a
    separate statement and ~3 ms of CPU per request); its count is the window's total in the
    database when last synced plus what this process counted since, so one process counts
    exactly. A sync thread adds what was counted to the shared rows (one upsert for every key
    counted) within `sync_seconds` of a request and reads back their totals, which include
    the other nodes'. So across nodes a limit can be passed by what the others counted in the
    last `sync_seconds` — the price of not waiting for the database on every request.
    """

    def __init__(self, engine: Engine, sync_seconds: float = 0.1):
        self.engine = engine
        self.sync_seconds = sync_seconds
        self._synced: dict[tuple[str, int], int] = {}  # the shared total when last synced
        self._pending: dict[tuple[str, int], int] = {}  # counted here since
        self._ends: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._syncing = threading.Lock()
        self._due = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, windows: list[tuple[str, int, int]]) -> dict[str, int]:
        found = {}
        with self._lock:
            for key, start, length in windows:
                window = (key, start)
                self._pending[window] = self._pending.get(window, 0) + 1
                self._ends[window] = start + length
                found[key] = self._synced.get(window, 0) + self._pending[window]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rate-limit-sync", daemon=True)
                self._thread.start()
        self._due.set()
        return found

    def _run(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self.sync_seconds)  # what arrives meanwhile goes in the same statement
            self._due.clear()
            try:
                self.sync()
            except Exception:  # kept pending: sent with the next request's sync
                log.warning("rate limit counts not shared: the database failed", exc_info=True)

    def sync(self) -> None:
        """Add what this process counted to the shared rows and learn their totals."""
        with self._syncing:  # one at a time: two syncs of the same batch would add it twice
            self._sync()

    def _sync(self) -> None:
        with self._lock:
            batch = dict(self._pending)
        if not batch:
            return
        rows = [{"key": key, "window_start": start, "count": n, "expires_at": self._ends[(key, start)]} for (key, start), n in batch.items()]
        totals = []
        with self.engine.connect() as conn:
            if is_postgres(conn):
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # no BEGIN/COMMIT round trips
            # a statement per SYNC_ROWS keys: many clients at once (addresses) must not pass the
            # databases' limit on bound parameters (SQLite 32,766, PostgreSQL 65,535)
            for start in range(0, len(rows), SYNC_ROWS):
                statement = upsert(conn, rate_limit_counters).values(rows[start : start + SYNC_ROWS])
                statement = statement.on_conflict_do_update(
                    index_elements=["key", "window_start"], set_={"count": rate_limit_counters.c["count"] + statement.excluded["count"]}
                ).returning(rate_limit_counters.c.key, rate_limit_counters.c.window_start, rate_limit_counters.c["count"])
                with conn.begin() if not is_postgres(conn) else contextlib.nullcontext():
                    totals += conn.execute(statement).all()
        now = time.time()
        with self._lock:
            for key, start, total in totals:
                window = (key, start)
                self._synced[window] = total
                left = self._pending.get(window, 0) - batch.get(window, 0)
                if left > 0:
                    self._pending[window] = left
                else:
                    self._pending.pop(window, None)
            for window in [w for w, end in self._ends.items() if end < now and w not in self._pending]:  # windows that ended
                self._synced.pop(window, None)
                del self._ends[window]


def purge_counters(engine: Engine, now: float | None = None) -> int:
    """Delete the windows that have ended (the sweep)."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        return conn.execute(rate_limit_counters.delete().where(rate_limit_counters.c.expires_at < int(now))).rowcount
