"""The lock modes of db/locks.py, observed on PostgreSQL: single-product writers of one store
do not queue behind each other, but all of them wait for an upload being applied."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from stockhub.db.locks import lock_store, share_stores


@pytest.fixture
def pg(pg_store):
    return pg_store.hub, pg_store.store


def holding(hub, take):
    conn = hub.engine.connect()
    conn.begin()
    take(conn)
    return conn


def waits(hub, take) -> bool:
    with hub.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
        try:
            take(conn)
            return False
        except OperationalError:
            return True


def test_writers_share_the_store_and_an_upload_excludes_them(pg):
    hub, store = pg
    writer = holding(hub, lambda conn: share_stores(conn, [store]))
    try:
        assert not waits(hub, lambda conn: share_stores(conn, [store]))  # another booking goes ahead
        assert waits(hub, lambda conn: lock_store(conn, store))  # an upload waits for the booking
    finally:
        writer.rollback()
        writer.close()
    upload = holding(hub, lambda conn: lock_store(conn, store))
    try:
        assert waits(hub, lambda conn: share_stores(conn, [store]))  # a booking waits for the upload
    finally:
        upload.rollback()
        upload.close()
