"""`stockhub serve --demo` as the README says: sign in with the printed user and find every view populated."""

from __future__ import annotations

import re

import httpx2 as httpx
import pytest

from test_serve import Served


def _sign_in(url: str, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30, follow_redirects=True)
    page = client.get("/signin", params={"next": "/dashboard"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = client.post("/signin", data={"csrf_token": csrf, "email": email, "password": password, "next": "/dashboard"})
    assert answer.status_code == 200, answer.text
    return client


@pytest.mark.slow
def test_the_demo_dashboard_has_something_on_every_page(tmp_path):
    served = Served(tmp_path / "data", "--demo")
    try:
        output = served.output()
        email, password = re.search(r"sign in as (\S+) with the password (\S+)", output).groups()
        partner_email = re.search(r"sign in as (partner@\S+),", output).group(1)
        retailer = _sign_in(served.url, email, password)
        overview = retailer.get("/dashboard").text
        stores = re.findall(r'data-store="(str_\w+)"', overview)
        assert len(stores) == 2 and "connected" in overview
        store = retailer.get(f"/dashboard/stores/{stores[0]}").text
        assert store.count('class="point valid"') == 3 and "invalid" in store  # three uploads, one refused
        upload = re.search(r'href="/dashboard/uploads/(upl_\w+)">stock.csv</a></td><td>stock</td><td>cli</td>\s*<td><span class="badge applied', store)
        assert upload, store
        assert "<td>" in retailer.get(f"/dashboard/uploads/{upload.group(1)}").text
        assert retailer.get(f"/dashboard/stores/{stores[0]}/stock").text.count("<code>0") >= 3
        orders = retailer.get("/dashboard/orders").text
        assert len(set(re.findall(r"<code>(demo-10\d\d)</code>", orders))) == 3 and "confirmed" in orders
        hooks = retailer.get("/dashboard/webhooks").text
        subscription = re.search(r'href="/dashboard/webhooks/(whk_\w+)"', hooks).group(1)
        assert "order.created" in retailer.get(f"/dashboard/webhooks/{subscription}").text

        partner = _sign_in(served.url, partner_email, password)
        mine = partner.get("/partner").text
        assert "Demo Retailer" in mine and "till-1" in mine and 'class="day up"' in mine
    finally:
        served.stop()
