"""Pull feeds end to end on both databases: a supplier's HTTP server (basic auth, ETag) and FTPS
server, fetched by the workers on schedule; each new document an upload of the store marked with
its feed; full snapshots and deltas; XML and JSON mappings; failures kept on the feed."""

from __future__ import annotations

import time

import pytest

from feed_servers import FTP_PASSWORD, FTP_USER, Document, SupplierFtp, SupplierHttp
from receiver import webhook_settings
from stockhub.gateways.ftp_tls import ensure_self_signed
from stockhub.settings import Settings


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:  # loopback suppliers allowed, as webhooks in tests; the suppliers' certificate trusted
    cert, _ = ensure_self_signed(tmp_path / "tls", "127.0.0.1")
    return webhook_settings(database_url, tmp_path, feed_retry_seconds=[60], feed_tls_ca_file=cert)


@pytest.fixture
def supplier():
    http = SupplierHttp()
    yield http
    http.stop()


def make_feed(client, tenant, **fields) -> dict:
    answer = client.post(f"/v1/stores/{tenant.store}/feeds", json={"name": "POS", "kind": "pull", **fields}, headers=tenant.auth)
    assert answer.status_code == 201, answer.text
    return answer.json()


def wait_fetch(client, tenant, feed: dict, after: str | None = None, timeout: float = 30) -> dict:
    """The feed once a fetch later than `after` is recorded and the upload it made is processed."""
    deadline = time.monotonic() + timeout
    while True:
        got = client.get(f"/v1/feeds/{feed['id']}", headers=tenant.auth).json()
        fetch = got["fetch"]
        if fetch["last_at"] is not None and fetch["last_at"] != after:
            upload = fetch["last_upload_id"]
            if fetch["last_status"] != "fetched" or client.get(f"/v1/uploads/{upload}", headers=tenant.auth).json()["status"] not in ("received", "processing"):
                return got
        assert time.monotonic() < deadline, got
        time.sleep(0.05)


def fetch_again(client, tenant, feed: dict) -> dict:
    before = client.get(f"/v1/feeds/{feed['id']}", headers=tenant.auth).json()["fetch"]["last_at"]
    assert client.post(f"/v1/feeds/{feed['id']}/fetch", headers=tenant.auth).status_code == 202
    return wait_fetch(client, tenant, feed, after=before)


def on_hand(client, tenant, identifier: str) -> int:
    return client.get(f"/v1/stores/{tenant.store}/stock/{identifier}", headers=tenant.auth).json()["on_hand"]


def test_a_pulled_csv_applies_on_schedule_conditionally_full_then_delta(server, client, tenant, supplier):
    supplier.documents["/stock.csv"] = Document(
        b"barcode,price,quantity\n9780141383743,6.99,3\n036000291452,2.50,4\n", etag='"v1"', auth=("shop", "p@ss")
    )
    feed = make_feed(client, tenant, source_url=supplier.url("/stock.csv", "shop:p%40ss"), format="csv", missing_items="out_of_stock")
    assert "p@ss" not in str(feed) and feed["source_url"].startswith("http://127.0.0.1")

    fetched = wait_fetch(client, tenant, feed)  # created due: the worker picks it up
    assert fetched["fetch"]["last_status"] == "fetched", fetched
    [upload] = client.get(f"/v1/stores/{tenant.store}/uploads", headers=tenant.auth).json()["items"]
    assert (upload["source"], upload["feed_id"], upload["status"]) == ("feed", feed["id"], "applied")
    assert on_hand(client, tenant, "9780141383743") == 3 and on_hand(client, tenant, "036000291452") == 4

    unchanged = fetch_again(client, tenant, feed)
    assert unchanged["fetch"]["last_status"] == "not_modified"
    assert supplier.requests[-1][1]["if-none-match"] == '"v1"'
    assert len(client.get(f"/v1/stores/{tenant.store}/uploads", headers=tenant.auth).json()["items"]) == 1

    supplier.documents["/stock.csv"] = Document(b"barcode,price,quantity\n9780141383743,6.99,5\n", etag='"v2"', auth=("shop", "p@ss"))
    full = fetch_again(client, tenant, feed)
    assert full["fetch"]["last_status"] == "fetched"
    assert on_hand(client, tenant, "9780141383743") == 5 and on_hand(client, tenant, "036000291452") == 0  # missing: out of stock at once
    record = client.get(f"/v1/uploads/{full['fetch']['last_upload_id']}", headers=tenant.auth).json()
    assert any("missing from the feed's full snapshot" in w for w in record["warnings"])

    assert client.patch(f"/v1/feeds/{feed['id']}", json={"delta": True}, headers=tenant.auth).status_code == 200
    supplier.documents["/stock.csv"] = Document(b"barcode,price,quantity\n036000291452,2.50,7\n", etag='"v3"', auth=("shop", "p@ss"))
    fetch_again(client, tenant, feed)
    assert on_hand(client, tenant, "036000291452") == 7 and on_hand(client, tenant, "9780141383743") == 5  # a delta touches only what it names


def test_xml_and_json_mappings_and_failures_kept_on_the_feed(server, client, tenant, supplier):
    supplier.documents["/feed.xml"] = Document(
        b'<?xml version="1.0"?><s:stock xmlns:s="urn:stock"><s:item><s:ean>9780141383743</s:ean><s:qty>2</s:qty>'
        b"<s:price>6.99</s:price></s:item></s:stock>",
        content_type="application/xml",
    )
    xml = make_feed(client, tenant, source_url=supplier.url("/feed.xml"), format="xml", mapping={
        "items": "//s:item", "fields": {"barcode": "s:ean", "quantity": "s:qty", "price": "s:price"}, "namespaces": {"s": "urn:stock"},
    })
    assert wait_fetch(client, tenant, xml)["fetch"]["last_status"] == "fetched"
    assert on_hand(client, tenant, "9780141383743") == 2

    supplier.documents["/feed.json"] = Document(
        b'{"data": {"products": [{"gtin": "036000291452", "stock": {"qty": 9}, "price": "2.50"}]}}', content_type="application/json"
    )
    json_feed = make_feed(client, tenant, source_url=supplier.url("/feed.json"), format="json", mapping={
        "items": "data.products[]", "fields": {"barcode": "gtin", "quantity": "stock.qty", "price": "price"},
    })
    assert wait_fetch(client, tenant, json_feed)["fetch"]["last_status"] == "fetched"
    assert on_hand(client, tenant, "036000291452") == 9

    laughs = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><s:stock xmlns:s="urn:stock"><s:item><s:ean>9780141383743</s:ean><s:qty>&b;</s:qty><s:price>6.99</s:price></s:item></s:stock>'
    supplier.documents["/feed.xml"] = Document(laughs, content_type="application/xml")
    refused = fetch_again(client, tenant, xml)
    assert refused["fetch"]["last_status"] == "failed" and "refused" in refused["fetch"]["last_error"]
    assert on_hand(client, tenant, "9780141383743") == 2  # nothing of it applied

    missing = make_feed(client, tenant, source_url=supplier.url("/gone.csv"), format="csv")
    failed = wait_fetch(client, tenant, missing)
    assert failed["fetch"]["last_status"] == "failed" and "404" in failed["fetch"]["last_error"] and failed["fetch"]["failures"] == 1
    events = client.get("/v1/events", params={"after": 0}, headers=tenant.auth).json()["items"]
    told = [e for e in events if e["type"] == "feed.fetch_failed" and e["data"]["feed_id"] == missing["id"]]
    assert told and "404" in told[0]["data"]["reason"]
    store = client.get(f"/v1/stores/{tenant.store}", headers=tenant.auth).json()
    assert {f["id"]: "404" in f["error"] for f in store["failing_feeds"]}[missing["id"]]


def test_a_pulled_file_over_ftps_applies(server, client, tenant, tmp_path, settings):
    cert, key = ensure_self_signed(tmp_path / "tls", "127.0.0.1")
    (tmp_path / "ftp-root").mkdir()
    ftps = SupplierFtp(tmp_path / "ftp-root", tls_files=(cert, key))
    try:
        ftps.put("out/stock.csv", b"barcode,price,quantity\n9780141383743,6.99,6\n")
        feed = make_feed(client, tenant, source_url=ftps.url("out/stock.csv"), username=FTP_USER, password=FTP_PASSWORD, format="csv")
        got = wait_fetch(client, tenant, feed)
        assert got["fetch"]["last_status"] == "fetched", got
        assert on_hand(client, tenant, "9780141383743") == 6
    finally:
        ftps.stop()
