"""The database drops the server's connections (a restart, `pg_terminate_backend`): the request
that meets a dead connection is a 503 with Retry-After, not a 500, and the next one works."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from support import upload_and_wait

BOOK = "9780141383743"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_terminated_database_connections_are_a_503_then_the_server_recovers(client, tenant, server, database_url):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    path = f"/v1/stores/{tenant.store}/stock/{BOOK}"
    assert client.get(path, headers=tenant.auth).json()["on_hand"] == 3  # the pool holds live connections now

    server.worker.stop()  # so the request below, not the worker, is the first to meet a dead connection
    if server.worker._thread is not None:
        server.worker._thread.join(10)  # its last round is over: nothing else holds or takes a connection
    name = make_url(database_url).database
    with psycopg.connect(database_url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()[0]
    assert ended >= 1

    lost = client.get(path, headers=tenant.auth)
    assert lost.status_code == 503, lost.text
    assert lost.headers["Retry-After"] == "1"
    assert lost.headers["content-type"].startswith("application/problem+json")
    assert "connection" in lost.json()["detail"]

    again = client.get(path, headers=tenant.auth)
    assert again.status_code == 200, again.text
    assert again.json()["on_hand"] == 3
    booked = client.post(
        "/v1/orders",
        headers=tenant.auth,
        json={
            "external_id": "after-restart",
            "channel": {"type": "marketplace", "name": "test"},
            "currency": "GBP",
            "lines": [{"identifier": BOOK, "quantity": 1, "unit_price": "6.99"}],
            "fulfilment": {"type": "ship", "store_id": tenant.store},
        },
    )
    assert booked.status_code == 201, booked.text
