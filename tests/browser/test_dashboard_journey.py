"""The dashboard in a real browser (issue 12): Playwright driving Debian's chromium
(/usr/bin/chromium, installed by scripts/test; no browser is downloaded). A retailer's user and
a partner's user sign in, visit every page and do what the pages offer; a screenshot of each
page is kept in test-artifacts/<database>/.

The journey runs on SQLite and PostgreSQL (the `server` fixture's parametrization): the pages
read through the same services on both, and one module-scoped browser keeps it to seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from stockhub import ids
from stockhub.services import accounts, connections
from support import Tenant, make_tenant, upload_and_wait

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "a long password"
BOOK, CEREAL, LAMP = "9780141383743", "036000291452", "4006381333931"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def _book(client: httpx.Client, tenant: Tenant, external_id: str, identifier: str) -> dict:
    answer = client.post(
        "/v1/orders",
        json={
            "external_id": external_id,
            "channel": {"type": "web", "name": "shop.example"},
            "currency": "GBP",
            "lines": [{"identifier": identifier, "quantity": 1, "unit_price": "6.99"}],
            "fulfilment": {"type": "pickup", "store_id": tenant.store},
        },
        headers=tenant.auth,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.fixture
def shop(server, client, hub, request):
    """A retailer with one store, three uploads (one refused), two orders, a failing webhook
    subscription; its owner; a partner connected to the store, and the partner's user."""
    hub.settings.webhook_allow_loopback = True
    tenant = make_tenant(hub, "Acme Books")
    accounts.create_user(hub, tenant.organization, "owner@acme.test", PASSWORD, "owner")
    partner = accounts.create_partner(hub, "Till Co", ["https://till.example/cb"], None, False)
    accounts.create_partner_user(hub, partner.id, "ops@till.test", PASSWORD)
    organization = ids.decode("organization", tenant.organization)
    connections.connect(hub, organization, ids.decode("partner", partner.id), tenant.brand, tenant.store, "till-42")
    subscription = client.post(
        "/v1/webhook-subscriptions",
        json={"url": "http://127.0.0.1:9/hooks", "event_types": ["order.created"]},  # nothing listens: deliveries fail
        headers=tenant.auth,
    )
    assert subscription.status_code == 201, subscription.text
    first = upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n{CEREAL},2.50,7\n4006381333932,1,1\n".encode())
    upload_and_wait(client, tenant, "Qty Count,Description,Code\n3,A book,x\n5,Cereal,y\n1,Lamp,z\n".encode())  # refused
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,5\n{CEREAL},2.50,0\n{LAMP},19.99,2\n".encode())
    orders = [_book(client, tenant, "web-1001", BOOK), _book(client, tenant, "web-1002", LAMP)]
    folder = ARTIFACTS / request.node.callspec.params["database_url"]
    folder.mkdir(parents=True, exist_ok=True)
    return {"tenant": tenant, "first_upload": first["id"], "orders": orders, "subscription": subscription.json()["id"], "shots": folder}


def _shot(page: Page, shop: dict, name: str) -> None:
    page.screenshot(path=str(shop["shots"] / f"{name}.png"), full_page=True)


def _sign_in(page: Page, base: str, email: str, landing: str) -> None:
    page.goto(base + landing)
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + landing)


def test_a_retailer_and_a_partner_use_the_dashboard(browser, server, client, shop):
    tenant, base = shop["tenant"], server.url
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()

    # sign in; the overview: the store, its status badge, last upload, uploads per day, success rate
    _sign_in(page, base, "owner@acme.test", "/dashboard")
    row = page.locator(f'#stores tr[data-store="{tenant.store}"]')
    expect(row).to_contain_text("Acme Books store")
    expect(row.locator(".badge").first).to_have_text("connected")
    expect(row).to_contain_text("67%")  # 2 of 3 uploads applied
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")  # keyboard first
    _shot(page, shop, "01-overview")

    # the store page: one chart point per processed upload and series
    row.get_by_role("link", name="Acme Books store", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acme Books store")
    expect(page.locator("svg.chart circle.point.valid")).to_have_count(3)
    expect(page.locator("svg.chart circle.point.rejected")).to_have_count(3)
    expect(page.locator("svg.chart polyline")).to_have_count(2)
    _shot(page, shop, "02-store")

    # drill down to the first upload's rejected row, and its rejections.csv
    page.locator(f'a[href="/dashboard/uploads/{shop["first_upload"]}"]').click()
    expect(page.locator("#rejections")).to_contain_text("4006381333932")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("rejections.csv")).click()
    csv = Path(download.value.path()).read_text()
    assert csv.splitlines()[0] == "row,field,value,reason" and "4006381333932" in csv
    _shot(page, shop, "03-upload")

    # current stock, searched and filtered
    page.goto(f"{base}/dashboard/stores/{tenant.store}/stock")
    expect(page.locator("#stock tbody tr")).to_have_count(3)
    page.get_by_label("Status").select_option("in_stock")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#stock tbody tr")).to_have_count(2)  # the book and the lamp
    page.get_by_label("Barcode or SKU contains").fill("978014")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#stock tbody tr")).to_have_count(1)
    expect(page.locator("#stock")).to_contain_text(BOOK)
    unlabelled = "els => els.filter(e => e.type !== 'hidden' && e.labels.length === 0).map(e => e.outerHTML)"
    assert page.locator("input, select").evaluate_all(unlabelled) == []  # every field says what it is
    _shot(page, shop, "04-stock")

    # the upload key: revealed, then rotated, each only once the box is ticked
    page.goto(f"{base}/dashboard/stores/{tenant.store}")
    assert page.locator("input, select").evaluate_all(unlabelled) == []
    page.get_by_role("button", name="Reveal the key").click()
    expect(page).to_have_url(f"{base}/dashboard/stores/{tenant.store}")  # the box is required: nothing sent
    page.get_by_label(re.compile("private place")).check()
    page.get_by_role("button", name="Reveal the key").click()
    expect(page.locator("#upload-key-value")).to_have_text(tenant.upload_key)
    _shot(page, shop, "05-key-revealed")
    page.goto(f"{base}/dashboard/stores/{tenant.store}")
    page.get_by_label(re.compile("private place")).check()
    page.get_by_role("button", name="Rotate the key").click()
    new_key = page.locator("#upload-key-value").inner_text()
    assert new_key != tenant.upload_key
    assert client.get(f"/upload/{tenant.upload_key}").status_code == 404  # the old key stopped working
    assert client.get(f"/upload/{new_key}").status_code == 200
    _shot(page, shop, "06-key-rotated")

    # orders: confirm and dispatch one, cancel the other with a reason
    first, second = (o["id"] for o in shop["orders"])
    page.goto(f"{base}/dashboard/orders")
    page.locator(f"#{first}").get_by_role("button", name=re.compile("^Confirm")).click()
    expect(page.locator(f"#{first} .badge")).to_have_text("confirmed")
    page.locator(f"#{first}").get_by_role("button", name=re.compile("^Dispatch")).click()
    expect(page.locator(f"#{first} .badge")).to_have_text("dispatched")
    page.locator(f"#{second} summary").click()
    page.get_by_label("Reason", exact=True).fill("customer changed their mind")
    page.get_by_role("button", name="Cancel order web-1002").click()
    expect(page.locator(f"#{second} .badge")).to_have_text("cancelled")
    expect(page.locator(f"#{second}")).to_contain_text("customer changed their mind")
    assert client.get(f"/v1/orders/{first}", headers=tenant.auth).json()["status"] == "dispatched"
    _shot(page, shop, "07-orders")

    # webhooks: the subscription's failing deliveries, one retried by hand
    page.goto(f"{base}/dashboard/webhooks")
    page.get_by_role("link", name="http://127.0.0.1:9/hooks").click()
    expect(page.locator("#deliveries tbody tr")).to_have_count(2)
    delivery = page.locator("#deliveries tbody tr").first.get_attribute("id")
    before = client.get(f"/v1/webhook-deliveries/{delivery}", headers=tenant.auth).json()
    page.locator(f"#{delivery}").get_by_role("button", name=re.compile("^Retry")).click()
    expect(page).to_have_url(re.compile(rf"/dashboard/webhooks/{shop['subscription']}"))
    after = client.get(f"/v1/webhook-deliveries/{delivery}", headers=tenant.auth).json()
    assert after["attempts"] > before["attempts"] or after["status"] in ("pending", "delivering")
    _shot(page, shop, "08-deliveries")

    # another store's page is "not found", as HTML
    page.goto(f"{base}/dashboard/stores/str_AAAAAAAAAAA")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")

    # the API's page works offline: nothing but this server is reachable
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
    page.goto(f"{base}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("stockhub", timeout=15000)
    _shot(page, shop, "09-docs")

    # a phone: no sideways scrolling of the page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/dashboard")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # wide tables scroll in their box
    _shot(page, shop, "10-overview-phone")

    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/signin"))

    # the partner: its connected retailer and store, stability over 30 days, upload records
    _sign_in(page, base, "ops@till.test", "/partner")
    row = page.locator(f'#partner-stores tr[data-store="{tenant.store}"]')
    expect(row).to_contain_text("Acme Books")
    expect(row).to_contain_text("till-42")
    expect(row.locator("svg.stability rect.day")).to_have_count(30)
    expect(row.locator("svg.stability rect.day.up")).to_have_count(1)  # its first upload was applied today
    _shot(page, shop, "11-partner")
    row.get_by_role("link", name="Acme Books store", exact=True).click()
    expect(page.locator("svg.chart circle.point.valid")).to_have_count(3)
    page.locator(f'a[href$="/uploads/{shop["first_upload"]}"]').click()
    expect(page.locator("#rejections")).to_contain_text("4006381333932")
    _shot(page, shop, "12-partner-upload")
    page.goto(f"{base}/dashboard")
    expect(page).to_have_url(f"{base}/partner")  # a partner's user has no retailer pages
    context.close()


def test_the_pages_read_without_javascript(browser, server, shop):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    _sign_in(page, server.url, "owner@acme.test", "/dashboard")
    expect(page.locator("#stores")).to_contain_text("Acme Books store")
    page.goto(f"{server.url}/dashboard/orders")
    page.locator(f"#{shop['orders'][0]['id']}").get_by_role("button", name=re.compile("^Confirm")).click()
    expect(page.locator(f"#{shop['orders'][0]['id']} .badge")).to_have_text("confirmed")
    context.close()
