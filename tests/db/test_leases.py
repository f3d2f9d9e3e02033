"""A claimed upload's lease: a live worker keeps it however long its work takes (the lease is
renewed while it works); a worker that stops renewing (a dead one) loses it once it runs out."""

from __future__ import annotations

import time

from stockhub import ids
from stockhub.db.tables import uploads
from stockhub.jobs.leases import held
from stockhub.jobs.queue import claim_upload
from stockhub.services import uploads as upload_service
from stockhub.services.context import Hub

LEASE = 1


def _queued_upload(hub, tenant, tmp_path) -> int:
    path = tmp_path / "stock.csv"
    path.write_bytes(b"barcode,price,quantity\n9780141383743,6.99,3\n")
    return ids.decode("upload", upload_service.import_file(hub, tenant.store, path)["upload_id"])


def _short_lease_hub(settings) -> Hub:
    return Hub.from_settings(settings.model_copy(update={"worker_lease_seconds": LEASE}))


def test_a_live_worker_keeps_its_upload_past_the_lease(settings, tenant, tmp_path):
    hub = _short_lease_hub(settings)
    try:
        upload_id = _queued_upload(hub, tenant, tmp_path)
        assert claim_upload(hub, "host:1:slow:a") == upload_id
        with held(hub, uploads, upload_id, "host:1:slow:a"):
            time.sleep(2.5 * LEASE)  # slow work, longer than the lease
            assert claim_upload(hub, "host:2:other:b") is None  # still held: not taken over
    finally:
        hub.engine.dispose()


def test_a_worker_that_stops_renewing_loses_its_upload(settings, tenant, tmp_path):
    hub = _short_lease_hub(settings)
    try:
        upload_id = _queued_upload(hub, tenant, tmp_path)
        assert claim_upload(hub, "host:1:dead:a") == upload_id
        time.sleep(1.5 * LEASE)  # nobody renews: the holder died
        assert claim_upload(hub, "host:2:other:b") == upload_id
    finally:
        hub.engine.dispose()
