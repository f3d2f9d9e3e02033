"""Uploads are kept in the file storage under a key, not an absolute local path; rows from before
keys are converted (migration 0009) or, outside the storage, still read where they are."""

from __future__ import annotations

import shutil

from sqlalchemy import select

from stockhub import ids
from stockhub.db.migrate import downgrade
from stockhub.db.tables import stock_levels, uploads
from stockhub.jobs.worker import Worker
from stockhub.services import uploads as upload_service

BOOK, GTIN14_BOOK = "9780141383743", "09780141383743"


def _import(hub, tenant, tmp_path, quantity: int) -> int:
    path = tmp_path / f"stock-{quantity}.csv"
    path.write_bytes(f"barcode,price,quantity\n{BOOK},6.99,{quantity}\n".encode())
    return ids.decode("upload", upload_service.import_file(hub, tenant.store, path)["upload_id"])


def _path_of(hub, upload_id: int) -> str:
    with hub.engine.connect() as conn:
        return conn.execute(select(uploads.c.path).where(uploads.c.id == upload_id)).scalar_one()


def _set_path(hub, upload_id: int, path: str) -> None:
    with hub.engine.begin() as conn:
        conn.execute(uploads.update().where(uploads.c.id == upload_id).values(path=path))


def test_an_upload_is_kept_under_a_storage_key(hub, tenant, tmp_path):
    upload_id = _import(hub, tenant, tmp_path, 3)
    key = _path_of(hub, upload_id)
    assert key.startswith(f"uploads/{ids.decode('store', tenant.store)}/") and not key.startswith("/")
    assert hub.storage.read_bytes(key) == f"barcode,price,quantity\n{BOOK},6.99,3\n".encode()
    assert Worker(hub).run_until_idle() >= 1
    with hub.engine.connect() as conn:
        assert conn.execute(select(uploads.c.status).where(uploads.c.id == upload_id)).scalar_one() == "applied"


def test_absolute_paths_under_the_storage_become_keys_and_others_still_read(hub, settings, tenant, tmp_path, run):
    inside, outside = _import(hub, tenant, tmp_path, 4), _import(hub, tenant, tmp_path, 5)
    inside_key, outside_key = _path_of(hub, inside), _path_of(hub, outside)
    root = hub.storage.local_folder()
    moved = tmp_path / "old-data" / "5.csv"  # a file kept before keys, outside today's storage
    moved.parent.mkdir()
    shutil.move(root / outside_key, moved)
    # as rows written before storage keys had them: absolute local paths
    _set_path(hub, inside, str(root / inside_key))
    _set_path(hub, outside, str(moved))
    downgrade(hub.engine, "0009-1")

    run("org", "create", "Migrated", "--json")  # any command migrates, with the storage root

    assert _path_of(hub, inside) == inside_key
    assert _path_of(hub, outside) == str(moved)
    assert Worker(hub).run_until_idle() >= 2
    with hub.engine.connect() as conn:
        statuses = conn.execute(select(uploads.c.status).where(uploads.c.id.in_([inside, outside]))).scalars().all()
        on_hand = conn.execute(select(stock_levels.c.on_hand).where(stock_levels.c.identifier == GTIN14_BOOK)).scalar_one()
    assert statuses == ["applied", "applied"] and on_hand == 5
