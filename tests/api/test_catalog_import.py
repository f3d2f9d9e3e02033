"""Catalog imports (issue 11, item 5): a JSON or NDJSON document of products becomes a job the
workers process; bad items are rejected with reasons and never stop the good ones; products are
searched by title, brand, category, identifier and catalog; changes are told as product.updated.
Both databases, over HTTP, with a running worker."""

from __future__ import annotations

import json
import time

import pytest

from receiver import webhook_settings
from support import make_tenant, upload, wait_for_upload

BOOK = "9780141383743"  # Matilda; also 0141383747 as an ISBN-10
CEREAL = "036000291452"
PEN = "4006381333931"

GOOD = [
    {
        "barcode": BOOK, "title": "Matilda", "brand": "Puffin", "description": "A novel by Roald Dahl",
        "categories": ["Books > Children", "Books > Classics"], "images": ["https://img.example/matilda.jpg"],
        "attributes": {"pages": 240, "hardback": False},
        "prices": [{"catalog": "en-GB/GBP", "price": "6.99"}, {"catalog": "de-DE/EUR", "price": "8.50"}],
    },
    {"gtin": CEREAL, "title": "Corn Flakes", "brand": "Kellogg's", "categories": ["Food>Breakfast"], "prices": [{"locale": "en-GB", "currency": "gbp", "price": 2.5}]},
    {"sku": "TEE01L", "title": "Cotton tee, large", "brand": "Acme", "categories": ["Clothing > Tops > T-shirts"], "attributes": {"size": "L"}},
]  # fmt: skip
BAD = [
    {"barcode": "9780141383744", "title": "Wrong check digit"},  # item 3
    {"barcode": PEN, "title": "Pen", "prices": [{"catalog": "en-GB/GBQ", "price": "1.00"}]},  # item 4
    {"title": "No identifier"},  # item 5
    "not an object",  # item 6
    {"sku": "MUG001", "title": "Mug", "images": ["ftp://img.example/mug.jpg"], "prices": [{"catalog": "ja-JP/JPY", "price": "1.5"}]},  # item 7
]


@pytest.fixture
def settings(database_url, tmp_path):
    return webhook_settings(database_url, tmp_path)  # webhook receivers on loopback


def post_import(client, tenant, body, *, key: str, ndjson: bool = False):
    if ndjson:
        content = "\n".join(json.dumps(item) for item in body).encode()
        headers = {"Content-Type": "application/x-ndjson"}
    else:
        content = json.dumps({"products": body}).encode() if not isinstance(body, bytes) else body
        headers = {"Content-Type": "application/json"}
    return client.post("/v1/catalog/imports", content=content, headers=tenant.auth | headers | {"Idempotency-Key": key})


def wait_for_import(client, tenant, import_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/catalog/imports/{import_id}", headers=tenant.auth).json()
        if job["status"] not in ("queued", "processing"):
            return job
        assert time.monotonic() < deadline, f"import {import_id} still {job['status']}"
        time.sleep(0.05)


def import_and_wait(client, tenant, body, *, key: str, ndjson: bool = False) -> dict:
    answer = post_import(client, tenant, body, key=key, ndjson=ndjson)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    return wait_for_import(client, tenant, answer.json()["id"])


def product_events(client, tenant, after: int = 0) -> list[dict]:
    events = client.get("/v1/events", params={"after": after}, headers=tenant.auth).json()["items"]
    return [e for e in events if e["type"] == "product.updated"]


def last_sequence(client, tenant) -> int:
    return client.get("/v1/events", params={"after": 0, "limit": 100}, headers=tenant.auth).json()["next_after"]


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
def test_an_import_applies_the_good_items_and_lists_the_bad_with_reasons(client, tenant, ndjson):
    job = import_and_wait(client, tenant, GOOD + BAD, key="first", ndjson=ndjson)
    assert job["status"] == "succeeded", job
    assert job["counts"] == {"total": 8, "processed": 8, "accepted": 3, "rejected": 5, "created": 3, "updated": 0, "unchanged": 0}

    rejections = client.get(f"/v1/catalog/imports/{job['id']}/rejections", headers=tenant.auth).json()["items"]
    by_item = {}
    for r in rejections:
        by_item.setdefault(r["index"], []).append((r["field"], r["reason"]))
    assert sorted(by_item) == [3, 4, 5, 6, 7]
    assert by_item[3] == [("barcode", "invalid GTIN check digit (expected 3)")]
    assert [f for f, _ in by_item[4]] == ["prices.0.currency"] and "ISO 4217" in by_item[4][0][1]
    assert by_item[5] == [("barcode", "a product needs a barcode (GTIN or ISBN) or a sku")]
    assert by_item[6][0][0] == "item" and "JSON object" in by_item[6][0][1]
    assert {f for f, _ in by_item[7]} == {"images.0"}  # the price is checked once the item's shape is right
    identifiers = {r["index"]: r["identifier"] for r in rejections}
    assert identifiers[3] == "9780141383744" and identifiers[4] == "0" + PEN and identifiers[5] is None

    matilda = client.get("/v1/products/0141383747", headers=tenant.auth).json()  # any spelling
    assert matilda | {
        "identifier": "0" + BOOK, "title": "Matilda", "brand": "Puffin", "image_url": "https://img.example/matilda.jpg",
        "categories": ["Books > Children", "Books > Classics"], "category": "Books > Children",
        "attributes": {"pages": 240, "hardback": False},
    } == matilda  # fmt: skip
    assert {(p["catalog"], p["price"]) for p in matilda["prices"]} == {("en-GB/GBP", "6.99"), ("de-DE/EUR", "8.50")}
    assert client.get("/v1/products/TEE01L", headers=tenant.auth).json()["attributes"] == {"size": "L"}
    assert client.get(f"/v1/products/{PEN}", headers=tenant.auth).status_code == 404  # rejected: nothing of it applied

    catalogs = client.get("/v1/catalogs", headers=tenant.auth).json()["items"]
    assert {(c["catalog"], c["currency"], c["products"]) for c in catalogs} == {("en-GB/GBP", "GBP", 2), ("de-DE/EUR", "EUR", 1)}

    changed = product_events(client, tenant)
    assert sorted(p["identifier"] for e in changed for p in e["data"]["products"]) == sorted(["0" + BOOK, "00" + CEREAL, "TEE01L"])
    assert all(e["data"]["import_id"] == job["id"] and e["store_id"] is None for e in changed)


def test_reimporting_tells_only_what_changed(client, tenant):
    first = import_and_wait(client, tenant, GOOD, key="one")
    assert first["counts"]["created"] == 3
    after = last_sequence(client, tenant)

    same = import_and_wait(client, tenant, GOOD, key="two")
    assert same["counts"] | {"unchanged": 3, "created": 0, "updated": 0} == same["counts"]
    assert product_events(client, tenant, after) == []

    cheaper = json.loads(json.dumps(GOOD))
    cheaper[1]["prices"][0]["price"] = "2.25"  # only a price changes
    cheaper[2]["title"] = "Cotton T-shirt, large"
    again = import_and_wait(client, tenant, cheaper, key="three")
    assert again["counts"] | {"unchanged": 1, "updated": 2} == again["counts"]
    [event] = product_events(client, tenant, after)
    products = {p["identifier"]: p for p in event["data"]["products"]}
    assert sorted(products) == ["00" + CEREAL, "TEE01L"]
    assert products["00" + CEREAL]["prices"] == [{"catalog": "en-GB/GBP", "locale": "en-GB", "currency": "GBP", "price": "2.25"}]
    assert products["TEE01L"]["title"] == "Cotton T-shirt, large"


def test_an_imports_changes_reach_webhook_subscribers(client, tenant, receiver):
    subscription = client.post(
        "/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["product.updated"]}, headers=tenant.auth
    ).json()
    receiver.secrets.append(subscription["secret"])
    job = import_and_wait(client, tenant, GOOD, key="hooked")
    receiver.wait_for(lambda got: len(got) == 1)
    [payload] = receiver.accepted()
    assert payload["type"] == "product.updated" and payload["data"]["import_id"] == job["id"]
    assert sorted(p["identifier"] for p in payload["data"]["products"]) == sorted(["0" + BOOK, "00" + CEREAL, "TEE01L"])


def test_the_same_idempotency_key_gets_the_same_job(client, tenant):
    first = post_import(client, tenant, GOOD, key="retry-me")
    again = post_import(client, tenant, GOOD, key="retry-me")
    assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
    other = post_import(client, tenant, GOOD[:1], key="retry-me")
    assert other.status_code == 409
    missing = client.post("/v1/catalog/imports", json={"products": GOOD}, headers=tenant.auth)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "idempotency-key"
    wait_for_import(client, tenant, first.json()["id"])


def test_products_files_and_imports_describe_one_catalog(client, tenant):
    """products.csv and an import write the same products; each keeps what only the other describes."""
    client.patch(f"/v1/stores/{tenant.store}", json={"custom_products": True}, headers=tenant.auth)
    csv = f"barcode,brand,title,image_url,description,colour\n{BOOK},Puffin,Matilda,https://img.example/m.jpg,A novel,red\n"
    done = wait_for_upload(client, tenant, upload(client, tenant.upload_key, csv.encode(), kind="products")["upload_id"])
    assert done["status"] == "applied"
    csv_event = product_events(client, tenant)[-1]
    assert csv_event["data"]["upload_id"] == done["id"] and csv_event["data"]["import_id"] is None

    job = import_and_wait(client, tenant, GOOD[:1] + [{"sku": "AB1", "title": "Short SKU"}], key="k")
    assert job["counts"] | {"updated": 1, "created": 1} == job["counts"]  # AB1: a custom identifier, as the store allows
    product = client.get(f"/v1/products/{BOOK}", headers=tenant.auth).json()
    assert product["color"] == "red" and product["description"] == "A novel by Roald Dahl" and product["prices"]
    stock = client.get(f"/v1/stores/{tenant.store}/stock", headers=tenant.auth)
    assert stock.status_code == 200


def test_products_are_searched_by_each_filter_and_paged(client, tenant, server):
    server.hub.settings.apply_part_rows = 4  # applied in parts of 4 products, each its own transaction
    many = [{"sku": f"BOOK{n:04d}", "title": f"Volume {n}", "brand": "Penguin" if n % 2 else "Puffin",
             "categories": ["Books > Children" if n % 3 else "Books > Childrens Classics"]} for n in range(12)]  # fmt: skip
    job = import_and_wait(client, tenant, GOOD + many, key="search")
    assert job["counts"] | {"created": 15, "processed": 15} == job["counts"]
    assert sum(len(e["data"]["products"]) for e in product_events(client, tenant)) == 15

    def ids(**params) -> list[str]:
        answer = client.get("/v1/products", params=params, headers=tenant.auth)
        assert answer.status_code == 200, answer.text
        return [p["identifier"] for p in answer.json()["items"]]

    assert ids(q="MATIL") == ["0" + BOOK]  # title, any case
    assert ids(q="kellogg") == ["00" + CEREAL]  # brand
    assert ids(brand="puffin", limit=500) == sorted(["0" + BOOK] + [f"BOOK{n:04d}" for n in range(0, 12, 2)])
    children = ids(category="books>children", limit=500)  # whole parts: not "Childrens Classics"
    assert children == sorted(["0" + BOOK] + [f"BOOK{n:04d}" for n in range(12) if n % 3])
    assert ids(category="Books", limit=500) == sorted(["0" + BOOK] + [f"BOOK{n:04d}" for n in range(12)])
    assert ids(category="Clothing > Tops") == ["TEE01L"]
    assert ids(identifier="0141383747") == ids(identifier="978-0-14-138374-3") == ["0" + BOOK]
    assert ids(identifier=CEREAL) == ["00" + CEREAL]
    assert ids(catalog="de-DE/EUR") == ["0" + BOOK]
    assert ids(catalog="en-gb/gbp") == ["00" + CEREAL, "0" + BOOK]
    assert ids(catalog="fr-FR/EUR") == []
    assert ids(q="volume", brand="penguin", category="Books > Children", limit=500) == [f"BOOK{n:04d}" for n in (1, 5, 7, 11)]
    assert ids(q="100%_") == []  # LIKE wildcards are text

    seen, token = [], None
    while True:
        page = client.get("/v1/products", params={"limit": 4} | ({"token": token} if token else {}), headers=tenant.auth).json()
        seen += [p["identifier"] for p in page["items"]]
        token = page["next_token"]
        if token is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 15
    assert client.get("/v1/products", params={"token": "nonsense"}, headers=tenant.auth).status_code == 400
    assert client.get("/v1/products", params={"identifier": "12$45"}, headers=tenant.auth).status_code == 400
    assert client.get("/v1/products", params={"category": "Books >> Children"}, headers=tenant.auth).status_code == 400


def test_another_organization_sees_none_of_it(client, tenant, hub):
    job = import_and_wait(client, tenant, GOOD, key="mine")
    other = make_tenant(hub, "Other Books")
    assert client.get(f"/v1/catalog/imports/{job['id']}", headers=other.auth).status_code == 404
    assert client.get(f"/v1/catalog/imports/{job['id']}/rejections", headers=other.auth).status_code == 404
    assert client.get("/v1/products", headers=other.auth).json()["items"] == []
    assert client.get("/v1/catalogs", headers=other.auth).json()["items"] == []
    assert client.get(f"/v1/products/{BOOK}", headers=other.auth).status_code == 404


def _nothing_changed(client, tenant) -> None:
    assert client.get("/v1/products", headers=tenant.auth).json()["items"] == []
    assert product_events(client, tenant) == []


def test_a_document_too_large_too_deep_or_unreadable_is_refused_whole(client, tenant, server):
    server.hub.settings.catalog_import_max_bytes = 50_000
    big = post_import(client, tenant, [{"sku": f"SKU{n:05d}", "title": "x" * 100} for n in range(1000)], key="big")
    assert big.status_code == 413 and "50000 bytes" in big.json()["detail"]

    deep = {"products": [{"sku": "DEEP01", "title": "Deep", "attributes": {"a": [[[[[[[[[[[[1]]]]]]]]]]]]}}]}
    refused = post_import(client, tenant, json.dumps(deep).encode(), key="deep")
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"field": "body", "message": "the document is nested deeper than 10 levels"}]
    very_deep = post_import(client, tenant, b'{"products": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", key="very-deep")
    assert very_deep.status_code == 422 and "nested deeper" in very_deep.json()["detail"]

    for body, reason in [
        (b'{"products": [', "not valid JSON"),
        (b'{"products": []}', "no products"),
        (b'{"items": [{"sku": "ABC123", "title": "x"}]}', 'must be a JSON object {"products"'),
        (b'{"products": {"sku": "ABC123"}}', "must be a JSON array"),
        (b'{"products": [{"sku": "ABC123", "title": NaN}]}', "NaN"),
        (b"\xff\xfe", "not UTF-8"),
        (b"", "empty"),
    ]:
        answer = post_import(client, tenant, body, key=f"bad-{reason}")
        assert answer.status_code == 422 and reason in answer.json()["detail"], (body, answer.text)
    wrong_type = client.post("/v1/catalog/imports", content=b"sku,title\n", headers=tenant.auth | {"Content-Type": "text/csv", "Idempotency-Key": "csv"})
    assert wrong_type.status_code == 415
    _nothing_changed(client, tenant)


def test_a_large_document_is_read_in_the_sandbox_and_fails_whole_when_unreadable(client, tenant, server):
    server.hub.settings.catalog_import_sandbox_bytes = 100  # every document here counts as large
    ok = import_and_wait(client, tenant, GOOD + BAD, key="large-ok")
    assert ok["status"] == "succeeded" and ok["counts"]["accepted"] == 3 and ok["counts"]["rejected"] == 5

    deep = b'{"products": [' + b"[" * 50 + b"]" * 50 + b"]}"
    answer = post_import(client, tenant, deep, key="large-deep")
    assert answer.status_code == 202  # too large to read at once: the job says why
    failed = wait_for_import(client, tenant, answer.json()["id"])
    assert failed["status"] == "failed" and failed["error"] == "the document is nested deeper than 10 levels"
    assert failed["counts"]["processed"] == 0


def test_ndjson_lines_that_cannot_be_read_are_rejected_alone(client, tenant):
    lines = b'{"sku": "LINE01", "title": "One"}\n\n{"sku": "LINE02", "title": \n{"sku": "LINE03", "title": "Three"}\n'
    answer = client.post(
        "/v1/catalog/imports", content=lines, headers=tenant.auth | {"Content-Type": "application/x-ndjson", "Idempotency-Key": "nd"}
    )
    job = wait_for_import(client, tenant, answer.json()["id"])
    assert job["counts"] | {"total": 3, "accepted": 2, "rejected": 1} == job["counts"]
    [rejection] = client.get(f"/v1/catalog/imports/{job['id']}/rejections", headers=tenant.auth).json()["items"]
    assert rejection["index"] == 2 and rejection["field"] == "item" and "not valid JSON" in rejection["reason"]


def test_the_same_product_twice_the_later_wins(client, tenant):
    job = import_and_wait(client, tenant, [{"barcode": BOOK, "title": "Old"}, {"barcode": "0141383747", "title": "New"}], key="twice")
    assert job["counts"] | {"accepted": 1, "rejected": 1} == job["counts"]
    [rejection] = client.get(f"/v1/catalog/imports/{job['id']}/rejections", headers=tenant.auth).json()["items"]
    assert rejection == {"index": 0, "identifier": "0" + BOOK, "field": "barcode", "reason": "superseded by item 1"}
    assert client.get(f"/v1/products/{BOOK}", headers=tenant.auth).json()["title"] == "New"
