"""What `/metrics` reports (Prometheus text format, prometheus_client).

Two kinds, on purpose:

- **Shared state, read from the database at scrape time** (`QueueCollector`): queue depths and
  lags — uploads waiting or processing, webhook deliveries and mail due, events committed but
  not yet numbered by the sequencer and the age of the oldest. Every API node reports the same
  truth however many processes there are, so scrape any one node (or all: they agree).
- **Per-process counters and histograms** (below): uploads processed by status and their rows,
  bookings and refusals, webhook attempts by outcome, HTTP requests by route template and status.
  Each process counts what it did; Prometheus sums over the scraped targets. Several processes
  behind one port (API worker processes) would each answer a scrape with only its own counts:
  then set `PROMETHEUS_MULTIPROC_DIR` to an empty folder before starting, and `/metrics` adds up
  every process's (prometheus_client's multiprocess mode). `stockhub worker` processes serve no
  HTTP: their counters are not scraped (their work shows in the database gauges).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from stockhub.db.engine import reading
from stockhub.db.tables import events, mail_outbox, uploads, webhook_deliveries

HTTP_REQUESTS = Histogram(
    "stockhub_http_request_duration_seconds",
    "HTTP requests by method, route template (not the raw path) and status, and how long they took",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPLOADS_PROCESSED = Counter("stockhub_uploads_processed_total", "Uploads processed by this process, by final status (applied, invalid, failed; error: an attempt that failed and is retried or given up)", ["kind", "status"])
UPLOAD_ROWS = Counter("stockhub_upload_rows_total", "Rows of the uploads processed (rate() of it: rows/s)", ["kind"])
UPLOAD_SECONDS = Histogram(
    "stockhub_upload_processing_seconds", "Time to process an upload (read, validate, apply)", ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
BOOKINGS = Counter("stockhub_bookings_total", "Order bookings: booked, replayed (a retry of a booked order) or refused", ["result"])
BOOKING_REFUSALS = Counter("stockhub_booking_refusals_total", "Refused bookings by reason", ["reason"])
WEBHOOK_ATTEMPTS = Counter(
    "stockhub_webhook_attempts_total",
    "Webhook delivery attempts by outcome: succeeded, retry (5xx, 429), refused (other answers), gone (410), error (no answer: network, timeout)",
    ["outcome"],
)
MAIL_SENT = Counter("stockhub_mail_attempts_total", "Notification mails attempted, by outcome (sent, retry, failed, skipped)", ["outcome"])
RATE_LIMITED = Counter("stockhub_rate_limited_total", "HTTP requests refused with 429, by the limit reached (token, address)", ["limit"])


class QueueCollector:
    """Queue depths and lags, read from the database when scraped (cheap: indexed, unfinished rows only)."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        up = GaugeMetricFamily("stockhub_database_up", "1 when the database answered this scrape's queries")
        started = time.perf_counter()
        try:
            found = self._read()
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from found
        took = GaugeMetricFamily("stockhub_queue_scrape_seconds", "Time the queue queries of this scrape took")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _read(self) -> list:
        now = datetime.now(UTC)
        u, d, m, e = uploads.c, webhook_deliveries.c, mail_outbox.c, events.c
        with reading(self.engine) as conn:
            upload_counts = dict(conn.execute(select(u.status, func.count()).where(u.status.in_(("received", "processing"))).group_by(u.status)).all())
            oldest_upload = conn.execute(select(func.min(u.received_at)).where(u.status.in_(("received", "processing")))).scalar()
            delivery_counts = dict(conn.execute(select(d.status, func.count()).where(d.next_attempt_at.is_not(None)).group_by(d.status)).all())
            held = conn.execute(select(func.count()).where(d.status == "held")).scalar() or 0
            due = conn.execute(select(func.count(), func.min(d.next_attempt_at)).where(d.next_attempt_at <= now)).one()
            mail_counts = dict(conn.execute(select(m.status, func.count()).where(m.next_attempt_at.is_not(None)).group_by(m.status)).all())
            mail_due = conn.execute(select(func.count(), func.min(m.next_attempt_at)).where(m.next_attempt_at <= now, m.status == "pending")).one()
            unsequenced = conn.execute(select(func.count(), func.min(e.occurred_at)).where(e.sequence.is_(None))).one()

        def age(since) -> float:
            return max(0.0, (now - since).total_seconds()) if since is not None else 0.0

        queued = GaugeMetricFamily("stockhub_uploads_queued", "Uploads waiting (received) or being processed", labels=["status"])
        for status in ("received", "processing"):
            queued.add_metric([status], upload_counts.get(status, 0))
        upload_age = GaugeMetricFamily("stockhub_uploads_oldest_unfinished_age_seconds", "Age of the oldest upload not yet processed (0: none)")
        upload_age.add_metric([], age(oldest_upload))
        deliveries = GaugeMetricFamily("stockhub_webhook_deliveries_queued", "Unfinished webhook deliveries by status", labels=["status"])
        for status in ("pending", "delivering"):
            deliveries.add_metric([status], delivery_counts.get(status, 0))
        deliveries.add_metric(["held"], held)
        deliveries_due = GaugeMetricFamily("stockhub_webhook_deliveries_due", "Webhook deliveries due now (pending and due, or a lapsed lease)")
        deliveries_due.add_metric([], due[0])
        deliveries_lag = GaugeMetricFamily("stockhub_webhook_delivery_lag_seconds", "How long the most overdue webhook delivery has been due (0: none)")
        deliveries_lag.add_metric([], age(due[1]))
        mail = GaugeMetricFamily("stockhub_mail_queued", "Unsent notification mail by status", labels=["status"])
        for status in ("pending", "sending"):
            mail.add_metric([status], mail_counts.get(status, 0))
        mail_lag = GaugeMetricFamily("stockhub_mail_lag_seconds", "How long the most overdue mail has been due (0: none)")
        mail_lag.add_metric([], age(mail_due[1]))
        lag = GaugeMetricFamily("stockhub_event_sequencer_lag_events", "Events committed but not yet numbered by the sequencer")
        lag.add_metric([], unsequenced[0])
        lag_age = GaugeMetricFamily("stockhub_event_sequencer_lag_seconds", "Age of the oldest committed event not yet numbered (0: none)")
        lag_age.add_metric([], age(unsequenced[1]))
        return [queued, upload_age, deliveries, deliveries_due, deliveries_lag, mail, mail_lag, lag, lag_age]


def exposition(engine) -> tuple[bytes, str]:
    """The scrape: this process's (or, in multiprocess mode, every process's) counters, then the queue gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    queues = CollectorRegistry(auto_describe=False)
    queues.register(QueueCollector(engine))
    return generate_latest(counters) + generate_latest(queues), CONTENT_TYPE_LATEST
