"""SQLite applies a large upload in parts: a worker killed half-way leaves the parts it committed,
and the retry applies the rest — each change once, in the ledger and in the events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from stockhub import ids
from stockhub.db.tables import events, stock_levels, stock_movements, uploads
from stockhub.jobs.worker import Worker
from stockhub.services import uploads as upload_service
from stockhub.services.ledger import reconcile
from support import gtins

ROWS = 100_000


def _upload(hub, upload_id: int):
    with hub.engine.connect() as conn:
        return conn.execute(select(uploads).where(uploads.c.id == upload_id)).one()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_killed_mid_apply_leaves_whole_parts_and_the_retry_finishes_once(hub, settings, tenant, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("barcode,price,quantity\n" + "".join(f"{code},2.50,{1 + n % 9}\n" for n, code in enumerate(gtins(ROWS, 2))))
    upload_id = ids.decode("upload", upload_service.import_file(hub, tenant.store, path)["upload_id"])

    env = os.environ | {
        "STOCKHUB_DATABASE_URL": settings.database_url,
        "STOCKHUB_DATA_DIR": str(settings.data_dir),
        "STOCKHUB_SECRET_KEY": settings.secret_key,
        "STOCKHUB_APPLY_PART_ROWS": "1000",
    }
    worker = subprocess.Popen([str(Path(sys.executable).parent / "stockhub"), "worker"], env=env)
    try:
        deadline = time.monotonic() + 60
        while not _upload(hub, upload_id).changed_count:  # kill it once its first part is in: it has ~99 to go
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never applied a part"
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()

    killed = _upload(hub, upload_id)
    assert killed.status == "processing" and 0 < killed.changed_count < ROWS  # part of it applied, in whole parts
    assert killed.changed_count % 1000 == 0
    with hub.engine.connect() as conn:
        levels = conn.execute(select(func.count()).select_from(stock_levels)).scalar_one()
    assert levels == killed.changed_count
    with hub.engine.begin() as conn:  # the dead worker's lease runs out
        conn.execute(uploads.update().where(uploads.c.id == upload_id).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))

    hub.settings.apply_part_rows = 1000
    assert Worker(hub).run_until_idle() >= 1
    done = _upload(hub, upload_id)
    assert (done.status, done.valid_count, done.changed_count) == ("applied", ROWS, ROWS)
    with hub.engine.connect() as conn:
        moved = conn.execute(select(func.count()).select_from(stock_movements).where(stock_movements.c.upload_id == upload_id)).scalar_one()
        announced = conn.execute(select(func.sum(events.c.change_count)).where(events.c.type == "inventory.updated")).scalar_one()
        levels = conn.execute(select(func.count(), func.sum(stock_levels.c.on_hand)).select_from(stock_levels)).one()
    assert moved == ROWS and announced == ROWS  # each product's change once in the ledger and once in the events
    assert tuple(levels) == (ROWS, sum(1 + n % 9 for n in range(ROWS)))
    assert reconcile(hub).is_empty()
