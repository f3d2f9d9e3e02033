"""Operating it: /metrics scrapes (queue gauges from the database, counters of this process),
/readyz says which check failed, request ids are echoed and logged; both databases."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import _free_port
from stockhub import ids, logs
from stockhub.api.server import http_server
from stockhub.db.engine import transaction
from stockhub.metrics import QueueCollector
from stockhub.services import events
from stockhub.services.events import sequence_events
from stockhub.services.context import Hub
from stockhub.settings import Settings
from support import upload_and_wait

STOCK = b"barcode,price,quantity\n9780141383743,6.99,3\n036000291452,2.50,0\n9780141383744,5.00,1\n"


def scrape(client: httpx.Client, **headers) -> dict[tuple[str, tuple], float]:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def book(client, tenant, external_id: str, quantity: int):
    return client.post("/v1/orders", headers=tenant.auth, json={
        "external_id": external_id, "channel": {"type": "web", "name": "shop"}, "currency": "GBP",
        "lines": [{"identifier": "9780141383743", "quantity": quantity, "unit_price": "6.99"}],
        "fulfilment": {"type": "pickup", "store_id": tenant.store},
    })


def test_metrics_count_uploads_bookings_and_requests_and_read_the_queues(client, tenant):
    before = scrape(client)
    upload_and_wait(client, tenant, STOCK)
    assert book(client, tenant, "web-1", 1).status_code == 201
    assert book(client, tenant, "web-1", 1).status_code == 200  # a retry
    assert book(client, tenant, "web-2", 50).status_code == 409  # more than there is
    for _ in range(2):
        assert client.get(f"/v1/stores/{tenant.store}/stock/9780141383743", headers=tenant.auth).status_code == 200
    after = scrape(client)

    def grew(name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("stockhub_uploads_processed_total", kind="stock", status="applied") == 1
    assert grew("stockhub_upload_rows_total", kind="stock") == 3  # its 3 rows
    assert grew("stockhub_bookings_total", result="booked") == 1
    assert grew("stockhub_bookings_total", result="replayed") == 1
    assert grew("stockhub_bookings_total", result="refused") == 1
    assert grew("stockhub_booking_refusals_total", reason="insufficient_stock") == 1
    # requests by route template, not by raw path
    assert grew("stockhub_http_request_duration_seconds_count", method="GET", route="/v1/stores/{store_id}/stock/{identifier}", status="200") == 2
    assert not any("9780141383743" in str(labels) for _, labels in after)
    # the queues, read from the database at scrape time
    assert after[("stockhub_database_up", ())] == 1
    assert after[("stockhub_uploads_queued", (("status", "received"),))] == 0
    assert ("stockhub_event_sequencer_lag_events", ()) in after
    assert ("stockhub_event_sequencer_lag_seconds", ()) in after
    assert ("stockhub_webhook_deliveries_queued", (("status", "pending"),)) in after
    assert ("stockhub_mail_queued", (("status", "pending"),)) in after


def test_the_queue_gauges_see_work_waiting(hub, tenant, tmp_path):
    from stockhub.services.uploads import import_file

    (tmp_path / "stock.csv").write_bytes(STOCK)
    import_file(hub, tenant.store, tmp_path / "stock.csv")  # received, no worker running
    with transaction(hub.engine) as conn:  # an event committed, not yet numbered (no worker runs the sequencer)
        events.emit(conn, "store.status_changed", ids.decode("organization", tenant.organization), None, {"status": "pending"})

    gauges = {s.name + str(sorted(s.labels.items())): s.value for f in QueueCollector(hub.engine).collect() for s in f.samples}
    assert gauges["stockhub_uploads_queued[('status', 'received')]"] == 1
    assert gauges["stockhub_uploads_oldest_unfinished_age_seconds[]"] >= 0
    assert gauges["stockhub_event_sequencer_lag_events[]"] == 1
    assert gauges["stockhub_event_sequencer_lag_seconds[]"] >= 0
    sequence_events(hub.engine)
    gauges = {s.name + str(sorted(s.labels.items())): s.value for f in QueueCollector(hub.engine).collect() for s in f.samples}
    assert gauges["stockhub_event_sequencer_lag_events[]"] == 0 and gauges["stockhub_event_sequencer_lag_seconds[]"] == 0


def test_metrics_want_the_token_when_one_is_set(settings):
    settings.metrics_token = "m3tr1cs-token"
    hub = Hub.from_settings(settings)
    with _app_only(hub) as url, httpx.Client(base_url=url) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert scrape(client, Authorization="Bearer m3tr1cs-token")[("stockhub_database_up", ())] == 1
    hub.engine.dispose()


def test_readyz_checks_the_database_and_the_storage(client):
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_says_which_check_failed(tmp_path):
    # a PostgreSQL port where nothing listens; the storage, a local folder, is fine
    settings = Settings(data_dir=tmp_path / "data", database_url=f"postgresql://postgres@127.0.0.1:{_free_port()}/nothing", secret_key="test-secret")
    hub = Hub.from_settings(settings)
    with _app_only(hub) as url:
        answer = httpx.get(f"{url}/readyz", timeout=30)
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable" and body["checks"]["storage"] == "ok"
    assert body["checks"]["database"] != "ok" and "refused" in body["checks"]["database"].lower()
    hub.engine.dispose()


def test_a_request_id_is_taken_or_made_echoed_and_put_in_problems(client, tenant):
    given = client.get(f"/v1/stores/{tenant.store}", headers=tenant.auth | {"X-Request-Id": "pos-42.abc"})
    assert given.headers["X-Request-Id"] == "pos-42.abc"
    made = client.get("/v1/stores/str_nothing", headers=tenant.auth | {"X-Request-Id": "bad id with spaces"})
    assert made.status_code == 404 and made.headers["X-Request-Id"] != "bad id with spaces"
    assert len(made.headers["X-Request-Id"]) == 24 and made.json()["request_id"] == made.headers["X-Request-Id"]
    assert client.get("/healthz").headers["X-Request-Id"] != made.headers["X-Request-Id"]


def test_log_lines_are_json_with_the_bound_ids_or_text_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert logs.chosen_format("auto", Terminal()) == "text"
    assert logs.chosen_format("auto", io.StringIO()) == "json"
    assert logs.chosen_format("json", Terminal()) == "json"

    record = logging.LogRecord("stockhub.jobs", logging.INFO, __file__, 1, "upload %s processed", ("x",), None)
    with logs.bound(request_id="r1", upload_id="upl_1", store_id="str_1"):
        logs._WithContext().filter(record)
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "upload x processed" and line["level"] == "info" and line["logger"] == "stockhub.jobs"
    assert (line["request_id"], line["upload_id"], line["store_id"]) == ("r1", "upl_1", "str_1")
    assert line["time"].endswith("Z")
    text = logs.TextFormatter().format(record)
    assert "upload x processed [request_id=r1 upload_id=upl_1 store_id=str_1]" in text
    assert logs.current("request_id") is None  # unbound after the block


def test_a_busy_routes_use_case_logs_with_its_requests_fields(hub):
    """The booking and lookup routes run their use case in an API thread (api/deps.in_thread):
    what it logs there still carries the request's id."""
    import asyncio

    from stockhub.api.deps import in_thread

    async def request() -> tuple[str | None, str]:
        with logs.bound(request_id="r-busy"):
            return await in_thread(hub, lambda: (logs.current("request_id"), threading.current_thread().name))

    request_id, thread = asyncio.run(request())
    assert request_id == "r-busy" and thread.startswith("stockhub-api")


class _app_only:
    """The API alone (no worker) on a loopback port."""

    def __init__(self, hub):
        self.hub = hub

    def __enter__(self) -> str:
        port = _free_port()
        self.server = http_server(self.hub, "127.0.0.1", port, log_level="warning", lifespan="off")
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)
