"""Who reaches which dashboard page (issue 12), over real HTTP on SQLite and PostgreSQL: a
retailer's user only its own stores, a partner's user only the stores connected to it; forms
need the session's CSRF token and the key needs the confirmation; refusals are HTML pages."""

from __future__ import annotations

import re

import httpx2 as httpx
import pytest

from stockhub import ids
from stockhub.services import accounts, connections
from support import make_tenant

PASSWORD = "a long password"


def signed_in(server, email: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    page = client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = client.post("/signin", data={"csrf_token": csrf, "email": email, "password": PASSWORD, "next": "/dashboard"})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: httpx.Client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


@pytest.fixture
def two_retailers(hub):
    acme, other = make_tenant(hub, "Acme Books"), make_tenant(hub, "Other Books")
    accounts.create_user(hub, acme.organization, "owner@acme.test", PASSWORD, "owner")
    accounts.create_user(hub, other.organization, "owner@other.test", PASSWORD, "owner")
    partner = accounts.create_partner(hub, "Till Co", ["https://till.example/cb"], None, False)
    accounts.create_partner_user(hub, partner.id, "ops@till.test", PASSWORD)
    connections.connect(hub, ids.decode("organization", acme.organization), ids.decode("partner", partner.id), acme.brand, acme.store, "till-1")
    return acme, other


def test_a_visitor_is_sent_to_sign_in_and_back(server):
    with httpx.Client(base_url=server.url) as client:
        answer = client.get("/dashboard/orders")
    assert answer.status_code == 303 and answer.headers["location"] == "/signin?next=%2Fdashboard%2Forders"


def test_a_user_reaches_only_its_own_stores_and_a_partner_only_its_connected_ones(server, two_retailers):
    acme, other = two_retailers
    owner = signed_in(server, "owner@acme.test")
    assert owner.get(f"/dashboard/stores/{acme.store}").status_code == 200
    refused = owner.get(f"/dashboard/stores/{other.store}")
    assert refused.status_code == 404 and "text/html" in refused.headers["content-type"] and "was not found" in refused.text
    assert owner.get(f"/dashboard/stores/{other.store}/stock").status_code == 404
    assert owner.get("/partner").status_code == 303  # a retailer's user has no partner pages

    till = signed_in(server, "ops@till.test")
    listed = till.get("/partner").text
    assert acme.store in listed and other.store not in listed
    assert till.get(f"/partner/stores/{acme.store}").status_code == 200
    assert till.get(f"/partner/stores/{other.store}").status_code == 404
    assert till.get(f"/dashboard/stores/{acme.store}").status_code == 404  # no retailer pages for a partner
    assert till.get("/dashboard").headers["location"] == "/partner"


def test_forms_need_the_csrf_token_and_the_key_needs_the_confirmation(server, two_retailers):
    acme, _ = two_retailers
    owner = signed_in(server, "owner@acme.test")
    path = f"/dashboard/stores/{acme.store}/upload-key"
    forged = owner.post(path, data={"action": "rotate", "confirm": "yes", "csrf_token": "guessed"})
    assert forged.status_code == 403 and "CSRF" in forged.text
    unconfirmed = owner.post(path, data={"action": "reveal", "csrf_token": csrf_of(owner, f"/dashboard/stores/{acme.store}")})
    assert unconfirmed.status_code == 422 and acme.upload_key not in unconfirmed.text and "confirm" in unconfirmed.text
    with httpx.Client(base_url=server.url) as anyone:
        assert anyone.get(f"/upload/{acme.upload_key}").status_code == 200  # the key was not rotated
    revealed = owner.post(path, data={"action": "reveal", "confirm": "yes", "csrf_token": csrf_of(owner, "/dashboard")})
    assert revealed.status_code == 200 and acme.upload_key in revealed.text


def test_a_partners_user_cannot_authorize_an_application(server, two_retailers):
    till = signed_in(server, "ops@till.test")
    partner = accounts.create_partner(server.hub, "Shop Co", ["https://shop.example/cb"], None, False)
    answer = till.get(
        "/oauth/authorize",
        params={"response_type": "code", "client_id": partner.id, "redirect_uri": "https://shop.example/cb", "scope": "stock.read", "state": "s"},
    )
    assert answer.status_code == 403 and "retailer" in answer.text
