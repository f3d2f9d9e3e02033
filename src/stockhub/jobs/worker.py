"""The worker loop: number new events; claim an upload, process it; the same for a catalog
import; apply a pushed feed batch; start due webhook deliveries and due feed pulls; repeat;
sweep now and then; sleep until woken.

`shutdown(grace)` (SIGTERM, see cli.py) stops claiming, lets the work in hand finish for up to
`grace` seconds, then gives back whatever is still held (jobs/queue.release_held) so another
worker takes it at once rather than when its lease runs out."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from stockhub import ids, logs, metrics
from stockhub.db.engine import reading
from stockhub.db.tables import uploads

from stockhub.feeds import sandbox
from stockhub.feeds.sandbox import ReaderFailed
from stockhub.jobs import feeds as feed_jobs
from stockhub.jobs.catalog_imports import process_one_import
from stockhub.jobs.deliver import Deliverer
from stockhub.jobs.leases import held
from stockhub.jobs.mail import send_due_mail, sweep_mail
from stockhub.jobs.queue import claim_upload, fail_upload, new_worker_id, release_held, release_orphaned_uploads
from stockhub.jobs.sweeps import expire_stale_stock, purge_event_history
from stockhub.services.context import Hub
from stockhub.services import rate_limits
from stockhub.services.events import sequence_events
from stockhub.services.ingest import process_upload
from stockhub.services.store_status import refresh_all as refresh_store_statuses

log = logging.getLogger(__name__)
WAKE_GATHER_SECONDS = 0.05  # events wait this long at most before a look numbers them: see run_forever

PULL_CONCURRENCY = 2  # feeds fetched at once by one worker


class Worker:
    def __init__(self, hub: Hub, name: str | None = None, deliver_webhooks: bool = True):
        self.hub = hub
        self.id = name or new_worker_id()
        self._stop = threading.Event()
        self._next_sweep = 0.0
        self.deliverer = Deliverer(hub, self.id, stopping=self._stop) if deliver_webhooks else None
        self._thread: threading.Thread | None = None
        self._shutting_down = False  # shutdown() drains the deliverer itself, within its grace
        # pull feeds are fetched beside the loop (a slow supplier must not hold up uploads and webhooks)
        self._pulls = ThreadPoolExecutor(max_workers=PULL_CONCURRENCY, thread_name_prefix="stockhub-pull")
        self._pulling = 0
        self._pulling_lock = threading.Lock()

    def run_once(self) -> bool:
        """Number committed events, process one upload, catalog import and feed batch if claimable,
        start the webhook deliveries that are due, send due mail and start due pulls; True when it
        did any of it."""
        events = self._events_once()
        return self._queues_once() or events

    def _events_once(self) -> bool:
        """Number committed events and start the deliveries that are due; True when it did either."""
        numbered = sequence_events(self.hub.engine)
        started = self._deliver_due()  # what is due goes out before an upload's parse could hold it up
        return numbered > 0 or started > 0

    def _queues_once(self) -> bool:
        """One look at every queue but events; True when one of them gave work."""
        processed = self._process_one_upload()
        if processed:  # its events go out now, not after the next upload
            self._events_once()
        stopping = self._stop.is_set()
        imported = process_one_import(self.hub, self.id) if not stopping else False
        batched = feed_jobs.run_one_batch(self.hub, self.id) if not stopping else False
        mailed = send_due_mail(self.hub, self.id, stopping=self._stop) if not stopping else 0
        pulls = self._start_due_pulls() if not stopping else 0
        return processed or imported or batched or mailed > 0 or pulls > 0

    def _deliver_due(self) -> int:
        return self.deliverer.deliver_due() if self.deliverer is not None else 0

    def _start_due_pulls(self) -> int:
        """Claim due pull feeds while a fetcher is free; each fetch runs in the pool."""
        started = 0
        while True:
            with self._pulling_lock:
                if self._pulling >= PULL_CONCURRENCY:
                    return started
            feed_id = feed_jobs.claim_due_feed(self.hub, self.id)
            if feed_id is None:
                return started
            with self._pulling_lock:
                self._pulling += 1
            self._pulls.submit(self._pull, feed_id)
            started += 1

    def _pull(self, feed_id: int) -> None:
        try:
            feed_jobs.run_claimed_pull(self.hub, feed_id, self.id)
        finally:
            with self._pulling_lock:
                self._pulling -= 1
            self.hub.ring()

    def _process_one_upload(self) -> bool:
        if self._stop.is_set():
            return False
        upload_id = claim_upload(self.hub, self.id)
        if upload_id is None:
            return False
        with reading(self.hub.engine) as conn:
            upload = conn.execute(select(uploads.c.store_id, uploads.c.kind).where(uploads.c.id == upload_id)).one()
        with logs.bound(upload_id=ids.encode("upload", upload_id), store_id=ids.encode("store", upload.store_id)):
            with held(self.hub, uploads, upload_id, self.id):
                self._process(upload_id, upload.kind)
        return True

    def _process(self, upload_id: int, kind: str) -> None:
        started = time.perf_counter()
        try:
            outcome = process_upload(self.hub, upload_id, self.id)
            if outcome is not None:
                self._count(upload_id, kind, outcome.status, started)
        except ReaderFailed as failure:
            log.warning("upload %s: %s; it goes back in the queue", upload_id, failure)
            fail_upload(self.hub, upload_id, self.id, str(failure))
            metrics.UPLOADS_PROCESSED.labels(kind, "error").inc()
        except Exception as error:
            log.exception("upload %s failed", upload_id)
            fail_upload(self.hub, upload_id, self.id, f"processing failed: {type(error).__name__}")
            metrics.UPLOADS_PROCESSED.labels(kind, "error").inc()

    def _count(self, upload_id: int, kind: str, status: str, started: float) -> None:
        took = time.perf_counter() - started
        with reading(self.hub.engine) as conn:
            lines = conn.execute(select(uploads.c.line_count).where(uploads.c.id == upload_id)).scalar() or 0
        metrics.UPLOADS_PROCESSED.labels(kind, status).inc()
        metrics.UPLOAD_ROWS.labels(kind).inc(lines)
        metrics.UPLOAD_SECONDS.labels(kind).observe(took)
        log.info("upload processed: %s, %d rows in %.2f s", status, lines, took)

    def run_until_idle(self) -> int:
        done = 0
        while self.run_once():
            done += 1
        return done

    def run_forever(self) -> None:
        logs.bind(worker_id=self.id)
        try:
            sandbox.prestart()  # the reader process, so the first upload does not wait for polars' import
        except OSError:
            log.exception("could not start the parsing sandbox ahead; each file will start its own")
        try:
            released = release_orphaned_uploads(self.hub)
            if released:
                log.info("took back %d uploads a stopped process of this host was processing", released)
        except Exception:
            log.exception("could not take back interrupted uploads")
        next_full_look = 0.0
        while not self._stop.is_set():
            # Gather: under a stream of bookings every commit wakes the worker, and each look costs
            # a round of statements however little arrived; 50 ms lets one look take many (at 10 ms
            # the looks took 0.5 ms of CPU per booking, at 50 ms 0.15; a webhook's aim is 1 s).
            self._stop.wait(WAKE_GATHER_SECONDS)
            self.hub.work_arrived.clear()  # before looking, so a wake-up during the look is not lost
            # A booking leaves only events: the queues (uploads, imports, batches, mail, pulls) are
            # looked at when work was queued, while they keep yielding work, and at every poll
            # interval (work queued by another host rings no bell here).
            full = self.hub.queued_work.is_set() or time.monotonic() >= next_full_look
            if full:
                self.hub.queued_work.clear()
            try:
                self._sweep_when_due()
                busy = self._events_once()
                if full:
                    queues_busy = self._queues_once()
                    next_full_look = 0.0 if queues_busy else time.monotonic() + self.hub.settings.worker_poll_seconds
                    busy = busy or queues_busy
            except Exception:
                log.exception("worker loop error")
                busy = False
            if not busy:
                self.hub.work_arrived.wait(self.hub.settings.worker_poll_seconds)
        self._pulls.shutdown(wait=False, cancel_futures=True)
        if self.deliverer is not None and not self._shutting_down:
            self.deliverer.close()

    def _sweep_when_due(self) -> None:
        if time.monotonic() >= self._next_sweep:
            expired = expire_stale_stock(self.hub)
            if expired:
                log.info("expired %d stock levels not reported for %d days", expired, self.hub.settings.expiry_days)
            purge_event_history(self.hub)
            rate_limits.purge_counters(self.hub.engine)
            refresh_store_statuses(self.hub)
            sweep_mail(self.hub)
            self._next_sweep = time.monotonic() + self.hub.settings.sweep_interval_seconds

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run_forever, name="stockhub-worker", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Stop claiming work (returns at once; `shutdown` waits and releases)."""
        self._stop.set()
        self.hub.work_arrived.set()

    def shutdown(self, grace: float) -> dict[str, int]:
        """Stop; let the work in hand finish for up to `grace` seconds; give back what is still
        held. Returns what was given back (uploads, deliveries, mail)."""
        self._shutting_down = True
        self.stop()
        deadline = time.monotonic() + max(grace, 0)
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self.deliverer is not None:
            self.deliverer.drain(deadline)
        released = release_held(self.hub, self.id)
        if any(released.values()):
            log.info(
                "stopping: gave back %(uploads)d uploads, %(deliveries)d webhook deliveries and %(mail)d mails still in hand", released
            )
        else:
            log.info("stopping: no work in hand")
        return released
