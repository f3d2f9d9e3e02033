"""The corpus (corpus_files.py): each vendor's export, as documented, applies with the expected
stock; read directly, then over HTTP and FTP on SQLite and PostgreSQL. A mapped store's odd file
applies; a file with several locations and none configured, or a mapping naming a missing header,
is refused saying why."""

from __future__ import annotations

import pytest

from corpus_files import ALL_FILES, ODD_MAPPING, CorpusFile, corpus, square, write_corpus
from ftp_support import connect, ftp_gateway, latest_upload, put, tls_files, upload_log  # noqa: F401
from stockhub.feeds import read_stock_file
from support import make_tenant, upload_and_wait

J = {"Content-Type": "application/json"}


@pytest.mark.parametrize("make", ALL_FILES, ids=lambda make: make.__name__)
def test_each_corpus_file_reads_to_its_stock(make):
    item: CorpusFile = make()
    parsed = read_stock_file(item.body, default_currency="GBP", location_name=item.location_name, column_mapping=item.column_mapping)
    assert parsed.invalid_reason is None, parsed.invalid_reason
    assert parsed.preset == item.preset
    assert parsed.skipped_count == item.skipped
    assert parsed.rejections.is_empty(), parsed.rejections.to_dicts()
    assert {r["identifier"]: (r["quantity"], r["price_minor"]) for r in parsed.rows.to_dicts()} == item.stock
    for part in item.warnings_contain:
        assert any(part in w for w in parsed.warnings), parsed.warnings


def test_the_generator_writes_the_corpus_folder(tmp_path):
    paths = write_corpus(tmp_path / "corpus")
    assert sorted(p.name for p in paths) == sorted(item.name for item in corpus())
    assert all(p.stat().st_size > 0 for p in paths)


def _configure(client, tenant, item: CorpusFile) -> None:
    changes = {}
    if item.location_name:
        changes["location_name"] = item.location_name
    if item.column_mapping:
        changes["column_mapping"] = item.column_mapping
    if changes:
        answer = client.patch(f"/v1/stores/{tenant.store}", json=changes, headers=tenant.auth | J)
        assert answer.status_code == 200, answer.text


def _stock(client, tenant) -> dict:
    items = client.get(f"/v1/stores/{tenant.store}/stock", params={"limit": 100}, headers=tenant.auth).json()["items"]
    return {i["identifier"]: (i["on_hand"], i["price"]) for i in items}


def _expected(item: CorpusFile) -> dict:
    return {identifier: (on_hand, f"{price // 100}.{price % 100:02d}") for identifier, (on_hand, price) in item.stock.items()}


def _check(client, tenant, item: CorpusFile, record: dict) -> None:
    assert record["status"] == "applied", record
    assert record["preset"] == item.preset
    assert record["counts"]["skipped"] == item.skipped
    assert record["counts"]["rejected"] == 0
    assert _stock(client, tenant) == _expected(item), item.name


def test_every_export_applies_over_http(client, hub):
    for n, item in enumerate(corpus()):
        tenant = make_tenant(hub, name=f"Corpus {n}")
        _configure(client, tenant, item)
        _check(client, tenant, item, upload_and_wait(client, tenant, item.body))


def test_every_export_applies_over_ftp(client, hub, ftp_gateway):
    gateway = ftp_gateway()
    for n, item in enumerate(corpus()):
        tenant = make_tenant(hub, name=f"Corpus FTP {n}")
        _configure(client, tenant, item)
        with connect(gateway, tenant.upload_key) as ftp:
            assert put(ftp, item.name, item.body).startswith("226")
        record = latest_upload(client, tenant)
        assert record["source"] == "ftp"
        _check(client, tenant, item, record)
        log = upload_log(gateway, tenant.upload_key, record["id"])
        assert "read as:" in log
        if item.skipped:
            assert f"{item.skipped} skipped: not items" in log


def test_several_locations_and_none_configured_is_refused_naming_them(client, tenant):
    record = upload_and_wait(client, tenant, square().body)
    assert record["status"] == "invalid" and record["preset"] == "square"
    assert '"Current Quantity Islington", "Current Quantity Manchester"' in record["error"]
    assert "location_name" in record["error"]
    client.patch(f"/v1/stores/{tenant.store}", json={"location_name": "Leeds"}, headers=tenant.auth | J)
    record = upload_and_wait(client, tenant, square().body)
    assert record["status"] == "invalid" and 'location_name "Leeds"' in record["error"]
    client.patch(f"/v1/stores/{tenant.store}", json={"location_name": "manchester"}, headers=tenant.auth | J)
    record = upload_and_wait(client, tenant, square().body)
    assert record["status"] == "applied"
    assert _stock(client, tenant)["MUG.RED_01"] == (6, "9.95")


def test_a_mapped_store_never_falls_back_and_names_a_missing_header(client, tenant):
    answer = client.patch(f"/v1/stores/{tenant.store}", json={"column_mapping": ODD_MAPPING | {"price": "Prix HT"}}, headers=tenant.auth | J)
    assert answer.status_code == 200 and answer.json()["column_mapping"]["price"] == "Prix HT"
    odd = [make for make in ALL_FILES if make.__name__ == "mapped_odd_file"][0]()
    record = upload_and_wait(client, tenant, odd.body)
    assert record["status"] == "invalid" and record["preset"] == "mapping"
    assert '"Prix HT" (price), which the file does not have' in record["error"]
    # a NearSt-shaped file is not read by its aliases either: the mapping is all there is
    record = upload_and_wait(client, tenant, b"barcode,price,quantity\n9780141383743,6.99,3\n")
    assert record["status"] == "invalid" and "header is on row 3" in record["error"]
    # removing the mapping brings the presets and aliases back
    assert client.patch(f"/v1/stores/{tenant.store}", json={"column_mapping": None}, headers=tenant.auth | J).json()["column_mapping"] is None
    assert upload_and_wait(client, tenant, b"barcode,price,quantity\n9780141383743,6.99,3\n")["status"] == "applied"


BAD_MAPPINGS = [
    ({"quantity": 2, "price": 3}, "map the identifier column"),
    ({"identifier": "EAN", "price": 3}, "map the quantity column"),
    ({"identifier": "EAN", "quantity": 0, "price": 3}, "column_mapping.quantity"),
    ({"identifier": "EAN", "quantity": 2, "price": 3, "delimiter": "::"}, "column_mapping.delimiter"),
    ({"identifier": "EAN", "quantity": 2, "price": 3, "encoding": "rot13"}, "text encoding"),
    ({"identifier": "EAN", "quantity": 2, "price": 3, "encoding": "no-such-codec"}, "text encoding"),
    ({"identifier": "EAN", "quantity": 2, "price": 3, "header_row": None}, "only be mapped by column positions"),
    ({"identifier": 1, "quantity": 2, "price": 3, "decimal_comma": True, "delimiter": ","}, "delimiter other than the comma"),
    ({"identifier": 1, "quantity": 2, "price": 3, "colour": 4}, "colour"),
    ({"identifier": 1, "barcode": 2, "quantity": 2, "price": 3}, "not both"),
]


def test_an_invalid_mapping_is_a_clear_422_and_changes_nothing(client, tenant):
    for mapping, says in BAD_MAPPINGS:
        answer = client.patch(f"/v1/stores/{tenant.store}", json={"column_mapping": mapping}, headers=tenant.auth | J)
        assert answer.status_code == 422, (mapping, answer.text)
        assert says in answer.text, (mapping, answer.text)
        assert client.get(f"/v1/stores/{tenant.store}", headers=tenant.auth).json()["column_mapping"] is None
