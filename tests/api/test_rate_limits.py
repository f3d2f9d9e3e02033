"""Rate limits of the HTTP API, per token and per client address, counted in the database (shared by
every node) or in memory; both databases."""

from __future__ import annotations

import time
import uuid

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from conftest import serving
from stockhub import security
from stockhub.db.tables import rate_limit_counters
from stockhub.errors import LimitReached
from stockhub.services import tenancy
from stockhub.services.context import Hub
from stockhub.services.rate_limits import Limiter
from support import make_tenant


def clear_of_a_window_end(seconds: int = 3600, margin: float = 30):
    """Windows are fixed clock periods: a test that counts through a live server waits out the last
    seconds of the current one, so its requests all fall in one window."""
    left = seconds - time.time() % seconds
    if left < margin:
        time.sleep(left)


@pytest.fixture(params=["database", "memory"])
def limited(request, settings):
    settings.rate_limit_per_token = "3/hour"
    settings.rate_limit_per_address = "off"
    settings.rate_limit_store = request.param
    hub = Hub.from_settings(settings)
    with serving(hub) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        clear_of_a_window_end()
        yield hub, client
    hub.engine.dispose()


def test_a_token_past_its_limit_gets_429_with_the_headers_and_another_token_is_unaffected(limited):
    hub, client = limited
    tenant = make_tenant(hub)
    other = tenancy.create_api_token(hub, tenant.organization).secret
    answers = [client.get(f"/v1/stores/{tenant.store}", headers=tenant.auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" and 1 <= int(a.headers["RateLimit-Reset"]) <= 3600 for a in answers)

    refused = client.get(f"/v1/stores/{tenant.store}", headers=tenant.auth)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert refused.headers["RateLimit-Limit"] == "3" and refused.headers["RateLimit-Remaining"] == "0"
    body = refused.json()
    assert body["status"] == 429 and body["limit"] == "token" and body["retry_after"] == int(refused.headers["Retry-After"])
    assert body["request_id"] == refused.headers["X-Request-Id"]

    assert client.get(f"/v1/stores/{tenant.store}", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    assert client.get("/healthz").status_code == 200 and "RateLimit-Limit" not in client.get("/healthz").headers  # probes are never limited


def test_a_refused_request_changes_nothing(limited):
    hub, client = limited
    tenant = make_tenant(hub)
    for n in range(3):
        client.get("/v1/orders", headers=tenant.auth)
    booking = {
        "external_id": "web-1", "channel": {"type": "web", "name": "shop"}, "currency": "GBP",
        "lines": [{"identifier": "9780141383743", "quantity": 1, "unit_price": "6.99"}],
        "fulfilment": {"type": "pickup", "store_id": tenant.store},
    }
    assert client.post("/v1/orders", headers=tenant.auth, json=booking).status_code == 429
    other = tenancy.create_api_token(hub, tenant.organization).secret
    assert client.get("/v1/orders", headers={"Authorization": f"Bearer {other}"}).json()["items"] == []


def test_the_limit_per_address_counts_every_token_and_none(settings):
    settings.rate_limit_per_token = "off"
    settings.rate_limit_per_address = "4/hour"
    hub = Hub.from_settings(settings)
    with serving(hub) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        clear_of_a_window_end()
        tenant = make_tenant(hub)
        other = tenancy.create_api_token(hub, tenant.organization).secret
        assert client.get("/v1/orders", headers=tenant.auth).status_code == 200
        assert client.get("/v1/orders", headers={"Authorization": f"Bearer {other}"}).status_code == 200
        assert client.get("/v1/orders").status_code == 401
        assert client.get("/dashboard", follow_redirects=False).status_code in (200, 303)
        refused = client.get("/v1/orders", headers=tenant.auth)
        assert refused.status_code == 429 and refused.json()["limit"] == "address"
    hub.engine.dispose()


@pytest.mark.parametrize("store", ["database", "memory"])
def test_a_window_resets(settings, store):
    settings.rate_limit_per_token = "2/minute"
    settings.rate_limit_per_address = "100/hour"
    settings.rate_limit_store = store
    hub = Hub.from_settings(settings)
    limiter = Limiter(settings, hub.engine)
    start = 1_800_000_000.0  # a window's first second
    assert limiter.check("shk_a", "192.0.2.1", now=start).remaining == 1
    assert limiter.check("shk_a", "192.0.2.1", now=start + 30).remaining == 0
    with pytest.raises(LimitReached) as reached:
        limiter.check("shk_a", "192.0.2.1", now=start + 59)
    assert reached.value.retry_after == 1 and reached.value.extra == {"limit": "token"}
    assert limiter.check("shk_b", "192.0.2.1", now=start + 59).remaining == 1  # another token
    fresh = limiter.check("shk_a", "192.0.2.1", now=start + 60)  # the next minute
    assert (fresh.limit, fresh.remaining, fresh.reset) == (2, 1, 60)
    hub.engine.dispose()


def test_nodes_share_the_database_counts_once_synced(settings):
    """Each node counts in memory and shares its counts in the background (within 0.1 s): once a
    node has synced, its count includes the others'."""
    settings.rate_limit_per_token = "3/minute"
    settings.rate_limit_per_address = "off"
    settings.rate_limit_store = "database"
    hub = Hub.from_settings(settings)
    one, two = Limiter(settings, hub.engine), Limiter(settings, hub.engine)
    start = 1_800_000_000.0
    token, other = f"shk_{uuid.uuid4().hex}", f"shk_{uuid.uuid4().hex}"  # no other test's counts in these windows
    assert [one.check(token, None, now=start + n).remaining for n in range(2)] == [2, 1]
    one.counter.sync()
    assert two.check(token, None, now=start + 2).remaining == 2  # not synced yet: it knows only its own
    two.counter.sync()
    with pytest.raises(LimitReached):  # 2 + 1 counted, and this one
        two.check(token, None, now=start + 3)
    assert two.check(other, None, now=start + 3).remaining == 2  # another token
    two.counter.sync()
    one.check(token, None, now=start + 4)
    one.counter.sync()  # learns the others' counts with its own
    with pytest.raises(LimitReached):
        one.check(token, None, now=start + 5)
    hub.engine.dispose()


def test_a_node_counts_into_the_database_in_the_background(settings):
    settings.rate_limit_per_token = "100/minute"
    settings.rate_limit_per_address = "off"
    settings.rate_limit_store = "database"
    hub = Hub.from_settings(settings)
    limiter = Limiter(settings, hub.engine)
    token = f"shk_{uuid.uuid4().hex}"
    for _ in range(5):
        limiter.check(token, None)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with hub.engine.connect() as conn:
            counted = conn.execute(
                select(func.sum(rate_limit_counters.c["count"])).where(rate_limit_counters.c.key == f"token:{security.key_hash(settings.secret, token)[:40]}")
            ).scalar()
        if counted == 5:
            break
        time.sleep(0.05)
    assert counted == 5
    hub.engine.dispose()


def test_a_sync_of_more_clients_than_one_statement_can_bind_counts_them_all(settings):
    settings.rate_limit_per_token = "off"
    settings.rate_limit_per_address = "100/minute"
    settings.rate_limit_store = "database"
    hub = Hub.from_settings(settings)
    one, two = Limiter(settings, hub.engine), Limiter(settings, hub.engine)
    start = 1_800_000_000.0
    addresses = [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(17_000)]  # 4 values a row: past 65,535
    for address in addresses:
        one.check(None, address, now=start)
    one.counter.sync()
    two.check(None, addresses[-1], now=start + 1)
    two.counter.sync()
    assert two.check(None, addresses[-1], now=start + 2).remaining == 97  # the other node's one, and its own two
    with hub.engine.connect() as conn:
        counted = select(func.count()).where(rate_limit_counters.c.key.like("address:10.%"), rate_limit_counters.c.window_start == int(start))
        assert conn.execute(counted).scalar() == 17_000
    hub.engine.dispose()
