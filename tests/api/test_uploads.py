"""The two-step HTTP upload, NearSt-compatible, end to end: URL, PUT, processing, stock, explanations."""

from __future__ import annotations

import io
import json
import time
import re
from urllib.parse import parse_qs, urlencode, urlparse

import httpx2 as httpx
import xlsxwriter
from sqlalchemy import func, select

from stockhub.db.tables import stock_movements
from stockhub.services.ledger import reconcile
from support import upload, upload_and_wait, wait_for_upload

BOOK = "9780141383743"  # ISBN-13 / EAN-13
BOOK_ISBN10 = "0141383747"  # the same book as ISBN-10
CEREAL_UPC = "036000291452"  # UPC-A
CEREAL_EAN = "0036000291452"  # the same item as EAN-13
GTIN14_BOOK = "0" + BOOK


def stock(client, tenant, **params) -> dict[str, dict]:
    items, token = [], None
    while True:
        page = client.get(
            f"/v1/stores/{tenant.store}/stock", params=params | ({"token": token} if token else {}), headers=tenant.auth
        ).json()
        items += page["items"]
        if not (token := page["next_token"]):
            return {item["identifier"]: item for item in items}


def movements(hub) -> int:
    with hub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(stock_movements)).scalar_one()


def test_step_one_answers_the_url_to_put_to_as_plain_text(client, tenant):
    response = client.get(f"/upload/{tenant.upload_key}", params={"type": "stock"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    url = response.text
    assert url.startswith(client.base_url.__str__().rstrip("/") + "/incoming/")
    assert "\n" not in url and "signature=" in url
    assert client.get(f"/upload/{tenant.upload_key}", params={"type": "prices"}).status_code == 400
    assert client.get("/upload/not-a-real-key-not-a-real-key-not-a-real", params={"type": "stock"}).status_code == 404


def test_a_stock_file_uploaded_in_two_steps_becomes_readable_stock(client, tenant):
    answer = upload(client, tenant.upload_key, f"barcode,price,quantity,currency\n{BOOK},6.99,3,GBP\n{CEREAL_UPC},20,0,GBP\n".encode())
    assert answer["status"] == "received" and answer["upload_id"].startswith("upl_")
    record = wait_for_upload(client, tenant, answer["upload_id"])
    assert record["status"] == "applied"
    assert record["counts"] == {"lines": 2, "valid": 2, "rejected": 0, "superseded": 0, "skipped": 0, "in_stock_valid": 1, "changed": 2}
    assert record["preset"] is None  # a NearSt-shaped file: no export preset

    levels = stock(client, tenant)
    book = levels["0" + BOOK]
    assert book["on_hand"] == 3 and book["available"] == 3 and book["committed"] == 0
    assert book["price"] == "6.99" and book["currency"] == "GBP" and book["status"] == "in_stock"
    assert levels["00" + CEREAL_UPC]["status"] == "out_of_stock"
    assert set(stock(client, tenant, status="out_of_stock")) == {"00" + CEREAL_UPC}


def test_any_spelling_of_a_barcode_finds_the_same_stock(client, tenant):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK_ISBN10},6.99,3\n{CEREAL_UPC},2.50,7\n".encode())
    for spelling in (BOOK, BOOK_ISBN10, GTIN14_BOOK, "978-0-14-138374-3"):
        found = client.get(f"/v1/stores/{tenant.store}/stock/{spelling}", headers=tenant.auth)
        assert found.status_code == 200, spelling
        assert found.json()["on_hand"] == 3
    assert client.get(f"/v1/stores/{tenant.store}/stock/{CEREAL_EAN}", headers=tenant.auth).json()["on_hand"] == 7
    assert client.get(f"/v1/stores/{tenant.store}/stock/4006381333931", headers=tenant.auth).status_code == 404


def test_aliased_headers_semicolons_and_decimal_commas(client, tenant):
    body = f"EAN;Qty;Retail Price\n{BOOK};4;6,99\n{CEREAL_EAN};1;12,50\n".encode()
    record = upload_and_wait(client, tenant, body)
    assert record["status"] == "applied" and record["counts"]["valid"] == 2
    levels = stock(client, tenant)
    assert levels[GTIN14_BOOK]["price"] == "6.99" and levels["00" + CEREAL_UPC]["price"] == "12.50"


def test_every_rejected_row_is_explained(client, tenant):
    body = (
        "barcode,price,quantity\n"
        f"{BOOK},6.99,3\n"
        "9780141383744,6.99,3\n"  # bad check digit
        f"{CEREAL_UPC},0,3\n"  # zero price
        "ABCDEF123,5.00,2.5\n"  # decimal quantity
        "4006381333931,5.00,1\n"
        "96385074,1.00,1\n"
        "9780306406157,1.00,1\n"
    ).encode()
    record = upload_and_wait(client, tenant, body)
    assert record["status"] == "applied"
    assert record["counts"]["rejected"] == 3 and record["counts"]["valid"] == 4
    reasons = {r["row"]: r for r in record["rejections"]}
    assert set(reasons) == {3, 4, 5}
    assert reasons[3]["field"] == "identifier" and "check digit" in reasons[3]["reason"]
    assert reasons[4]["field"] == "price" and reasons[4]["value"] == "0"
    assert reasons[5]["field"] == "quantity" and reasons[5]["value"] == "2.5"

    csv_text = client.get(f"/v1/uploads/{record['id']}/rejections.csv", headers=tenant.auth)
    assert csv_text.status_code == 200 and csv_text.headers["content-type"].startswith("text/csv")
    lines = csv_text.text.strip().splitlines()
    assert lines[0] == "row,field,value,reason" and len(lines) == 4
    assert lines[1].startswith("3,identifier,9780141383744,")


def test_duplicate_rows_the_later_wins_and_the_earlier_is_reported(client, tenant):
    record = upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n{BOOK_ISBN10},7.99,5\n".encode())
    assert record["counts"]["superseded"] == 1 and record["counts"]["valid"] == 1
    assert record["rejections"][0]["row"] == 2 and "superseded by row 3" in record["rejections"][0]["reason"]
    assert stock(client, tenant)[GTIN14_BOOK]["on_hand"] == 5


def test_uploading_the_same_file_twice_changes_nothing_the_second_time(client, server, tenant):
    body = f"barcode,price,quantity\n{BOOK},6.99,3\n{CEREAL_UPC},2.50,7\n".encode()
    first = upload_and_wait(client, tenant, body)
    before = (stock(client, tenant), movements(server.hub))
    second = upload_and_wait(client, tenant, body)
    assert first["counts"]["changed"] == 2 and second["counts"]["changed"] == 0
    assert second["status"] == "applied"
    assert (stock(client, tenant), movements(server.hub)) == before


def test_an_upload_never_zeroes_products_it_does_not_mention(client, tenant):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n{CEREAL_UPC},2.50,7\n".encode())
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,1\n".encode())
    levels = stock(client, tenant)
    assert levels[GTIN14_BOOK]["on_hand"] == 1 and levels["00" + CEREAL_UPC]["on_hand"] == 7


def test_a_mostly_invalid_file_changes_nothing_and_says_why(client, tenant):
    upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    before = stock(client, tenant)
    # no header NearSt knows, columns in another order: read by position, most rows fail
    wrong = "Qty Count,Description,Code\n3,A book,9780141383743\n5,Cereal,036000291452\n1,Lamp,4006381333931\n".encode()
    record = upload_and_wait(client, tenant, wrong)
    assert record["status"] == "invalid"
    assert record["counts"]["rejected"] >= 3
    assert "position" in record["error"] and record["warnings"]
    assert stock(client, tenant) == before


def test_a_headerless_file_is_read_by_position_with_a_warning(client, tenant):
    record = upload_and_wait(client, tenant, f"{BOOK},6.99,3\n{CEREAL_UPC},2.50,0,GBP\n".encode())
    assert record["status"] == "applied" and record["counts"]["valid"] == 2
    assert any("position" in w for w in record["warnings"])
    assert stock(client, tenant)[GTIN14_BOOK]["on_hand"] == 3


def test_windows_1252_and_xlsx_files(client, tenant):
    cp1252 = f"barcode;price;quantity;title\n{BOOK};6,99;2;Café crème\n".encode("cp1252")
    assert upload_and_wait(client, tenant, cp1252)["status"] == "applied"
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer)
    sheet = workbook.add_worksheet()
    sheet.write_row(0, 0, ["barcode", "price", "quantity"])
    sheet.write_row(1, 0, [int(CEREAL_EAN), 2.5, 9])  # a number: the leading zeros are lost
    workbook.close()
    record = upload_and_wait(client, tenant, buffer.getvalue())
    assert record["status"] == "applied", record
    assert record["filename"].endswith(".xlsx")
    levels = stock(client, tenant)
    assert levels[GTIN14_BOOK]["on_hand"] == 2 and levels["00" + CEREAL_UPC]["on_hand"] == 9


def test_a_signed_url_is_single_use_tamper_proof_and_expires(client, server, tenant):
    url = client.get(f"/upload/{tenant.upload_key}").text
    parts = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    tampered = parts._replace(query=urlencode(query | {"expires": str(int(query["expires"]) + 3600)})).geturl()
    assert client.put(tampered, content=b"barcode,price,quantity\n").status_code == 403
    other_kind = url.replace("/stock?", "/products?")
    assert client.put(other_kind, content=b"x").status_code == 403

    body = f"barcode,price,quantity\n{BOOK},6.99,3\n".encode()
    assert client.put(url, content=body).status_code == 200
    again = client.put(url, content=body)
    assert again.status_code == 409 and "used" in again.json()["detail"]

    server.hub.settings.upload_url_ttl_seconds = -1
    expired = client.get(f"/upload/{tenant.upload_key}").text
    refused = client.put(expired, content=body)
    assert refused.status_code == 403 and "expired" in refused.json()["detail"]


def test_rotating_the_upload_key_revokes_urls_issued_under_the_old_key(client, tenant, run):
    body = f"barcode,price,quantity\n{BOOK},6.99,3\n".encode()
    issued = client.get(f"/upload/{tenant.upload_key}").text
    rotated = client.post(f"/v1/stores/{tenant.store}/upload-key", headers=tenant.auth)
    assert rotated.status_code == 200
    refused = client.put(issued, content=body)
    assert refused.status_code == 403 and "revoked" in refused.json()["detail"] and "rotated" in refused.json()["detail"]

    issued = client.get(f"/upload/{rotated.json()['upload_key']}").text
    newest = json.loads(run("store", "rotate-key", tenant.store, "--json").stdout)["upload_key"]
    refused = client.put(issued, content=body)
    assert refused.status_code == 403 and "revoked" in refused.json()["detail"]
    assert client.get(f"/v1/stores/{tenant.store}/uploads", headers=tenant.auth).json()["items"] == []

    assert upload(client, newest, body)["status"] == "received"


def test_a_file_still_streaming_in_when_the_key_is_rotated_is_refused(client, server, tenant):
    issued = client.get(f"/upload/{tenant.upload_key}").text

    def body():
        yield b"barcode,price,quantity\n"
        time.sleep(1)  # the server has checked the URL and is reading the body
        assert client.post(f"/v1/stores/{tenant.store}/upload-key", headers=tenant.auth).status_code == 200
        yield f"{BOOK},6.99,3\n".encode()

    with httpx.Client(timeout=30) as putter:
        refused = putter.put(issued, content=body())
    assert refused.status_code == 403 and "revoked" in refused.json()["detail"]
    assert client.get(f"/v1/stores/{tenant.store}/uploads", headers=tenant.auth).json()["items"] == []
    assert server.hub.storage.list("uploads") == []  # nothing kept, not even a part
    assert list((server.hub.storage.local_folder() / ".partial").iterdir()) == []


def test_a_file_over_the_size_cap_is_refused_and_not_kept(client, server, tenant):
    server.hub.settings.upload_max_bytes = 1000
    big = b"barcode,price,quantity\n" + f"{BOOK},6.99,3\n".encode() * 100
    url = client.get(f"/upload/{tenant.upload_key}").text
    assert client.put(url, content=big).status_code == 413

    def chunks():  # no Content-Length: the cap must hold while streaming
        for _ in range(100):
            yield f"{BOOK},6.99,3\n".encode()

    url = client.get(f"/upload/{tenant.upload_key}").text
    assert client.put(url, content=chunks()).status_code == 413
    assert client.get(f"/v1/stores/{tenant.store}/uploads", headers=tenant.auth).json()["items"] == []
    assert server.hub.storage.list("uploads") == []  # nothing kept, not even a part
    assert list((server.hub.storage.local_folder() / ".partial").iterdir()) == []


def test_uploads_of_one_store_apply_in_the_order_received(client, tenant):
    ids = [upload(client, tenant.upload_key, f"barcode,price,quantity\n{BOOK},6.99,{n}\n".encode())["upload_id"] for n in range(1, 7)]
    records = [wait_for_upload(client, tenant, upload_id) for upload_id in ids]
    assert all(r["status"] == "applied" for r in records)
    assert stock(client, tenant)[GTIN14_BOOK]["on_hand"] == 6
    listed = client.get(f"/v1/stores/{tenant.store}/uploads", params={"limit": 3}, headers=tenant.auth).json()
    assert [u["id"] for u in listed["items"]] == ids[::-1][:3] and listed["next_token"]
    finished = [r["finished_at"] for r in records]
    assert finished == sorted(finished)


def test_the_ledger_replays_to_the_levels(client, server, tenant):
    for quantities in ((3, 7), (1, 7), (1, 0), (5, 2)):
        upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,{quantities[0]}\n{CEREAL_UPC},2.50,{quantities[1]}\n".encode())
    assert reconcile(server.hub).is_empty()
    assert movements(server.hub) == 2 + 1 + 1 + 2


def test_upload_records_say_when_and_how(client, tenant):
    record = upload_and_wait(client, tenant, f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", record["received_at"])
    assert record["received_at"] <= record["started_at"] <= record["finished_at"]
    assert record["size_bytes"] == len(f"barcode,price,quantity\n{BOOK},6.99,3\n") and len(record["sha256"]) == 64
    assert record["source"] == "http" and record["type"] == "stock"


def test_stock_unreported_for_the_expiry_period_expires_until_reported_again(client, server, tenant):
    from datetime import UTC, datetime, timedelta

    from stockhub.jobs.sweeps import expire_stale_stock

    body = f"barcode,price,quantity\n{BOOK},6.99,3\n".encode()
    upload_and_wait(client, tenant, body)
    assert expire_stale_stock(server.hub, datetime.now(UTC) + timedelta(days=7)) == 0
    assert expire_stale_stock(server.hub, datetime.now(UTC) + timedelta(days=8)) == 1
    level = stock(client, tenant)[GTIN14_BOOK]
    assert level["status"] == "expired" and level["available"] == 0 and level["on_hand"] == 3
    assert set(stock(client, tenant, status="expired")) == {GTIN14_BOOK}

    again = upload_and_wait(client, tenant, body)
    assert again["counts"]["changed"] == 1
    assert stock(client, tenant)[GTIN14_BOOK]["status"] == "in_stock"
