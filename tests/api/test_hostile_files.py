"""Hostile files uploaded over HTTP: refused as invalid with a reason, the server keeps
answering, and the store's next upload applies. Formula cells come back spreadsheet-safe."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

import hostile_files
from stockhub import ids
from stockhub.db.tables import uploads
from stockhub.jobs.worker import Worker
from stockhub.services.upload_log import FILENAME, store_folder
from support import upload, upload_and_wait, wait_for_upload

GOOD = f"barcode,price,quantity\n{hostile_files.BOOK},6.99,3\n".encode()


def refused_then_next_applies(client, tenant, body: bytes, reason: str) -> dict:
    record = upload_and_wait(client, tenant, body)
    assert record["status"] == "invalid", record
    assert reason in record["error"], record["error"]
    assert record["counts"]["changed"] == 0
    assert client.get("/healthz").status_code == 200
    after = upload_and_wait(client, tenant, GOOD)
    assert after["status"] == "applied" and after["counts"]["valid"] == 1
    return record


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (hostile_files.XFD1048576, "its cell XFD1048576 makes it 16,384 columns, more than the 64 a file may have"),
        (hostile_files.ZZZZZZ, "its cell ZZZZZZ99999999999 makes it 321,272,406 columns"),
        (hostile_files.SEMICOLONS_1MB, "it has 1,048,577 columns, more than the 64 a file may have"),
        (hostile_files.far_cell("E3000000", 3000000), "its cell E3000000 makes it 3,000,000 rows, more than the 2,000,000"),
    ],
    ids=["XFD1048576", "ZZZZZZ99999999999", "1MB-of-semicolons", "3M-rows"],
)
def test_a_file_past_the_size_limits_is_refused_and_the_store_goes_on(client, tenant, body, reason):
    refused_then_next_applies(client, tenant, body, reason)


def test_a_500mb_shared_string_is_refused_without_reading_it(client, tenant):
    record = refused_then_next_applies(
        client, tenant, hostile_files.shared_string_500mb(), "a text longer than the 32,767 characters a cell may hold"
    )
    assert record["rejections"] == []


def test_a_rejected_giant_cell_is_kept_cut_to_200_characters(client, tenant):
    body = f"barcode,price,quantity\n{hostile_files.BOOK},6.99,3\n{'9' * 30000},1.00,1\n".encode()
    record = upload_and_wait(client, tenant, body)
    value = record["rejections"][0]["value"]
    assert len(value) == 200 and value == "9" * 199 + "…"
    rows = list(csv.reader(io.StringIO(client.get(f"/v1/uploads/{record['id']}/rejections.csv", headers=tenant.auth).text)))
    assert rows[1][2] == "9" * 199 + "…"


def test_a_file_that_makes_the_reader_crash_is_retried_then_refused(client, server, tenant):
    """Past the pre-checks (64 columns by a million rows) the reader itself asks for ~2 GB and
    aborts: only its child process dies. After UPLOAD_MAX_ATTEMPTS the file is invalid."""
    server.hub.settings.parse_max_memory_mb = 1024
    record = refused_then_next_applies(
        client, tenant, hostile_files.far_cell("BL1048576", 1048576), "the reader ran out of memory (limit 1024 MB)"
    )
    assert record["error"].startswith("the file could not be read")


def test_a_file_that_reads_too_long_is_retried_then_refused(client, server, tenant):
    server.hub.settings.parse_timeout_seconds = 0.001
    answer = upload(client, tenant.upload_key, GOOD)
    record = wait_for_upload(client, tenant, answer["upload_id"])
    assert record["status"] == "invalid"
    assert record["error"] == "the file could not be read: the reader took longer than 0.001 s"
    server.hub.settings.parse_timeout_seconds = 120
    assert upload_and_wait(client, tenant, GOOD)["status"] == "applied"


QUOTE = "'"
FORMULAS = ['=HYPERLINK("http://evil.example","click")', "=cmd|' /C calc'!A0", "+1+1", "-1+1", "@SUM(1+1)"]


def test_formula_cells_come_back_spreadsheet_safe(client, server, tenant):
    body = "barcode,price,quantity\n" + "".join(f'"{f.replace(chr(34), chr(34) * 2)}",1.00,1\n' for f in FORMULAS)
    record = upload_and_wait(client, tenant, body.encode())
    assert record["counts"]["rejected"] == len(FORMULAS)

    text = client.get(f"/v1/uploads/{record['id']}/rejections.csv", headers=tenant.auth).text
    for formula in FORMULAS:
        field = '"' + ("'" + formula).replace('"', '""') + '"'  # quoted, with a leading '
        assert f",identifier,{field}," in text, text
    values = [row[2] for row in csv.reader(io.StringIO(text))][1:]
    assert values == ["'" + f for f in FORMULAS]

    log = server.hub.storage.read_bytes(f"{store_folder(ids.decode('store', tenant.store))}/{FILENAME}").decode()
    for formula in FORMULAS:
        assert f"identifier {repr(QUOTE + formula)}:" in log, log
        assert f" {formula!r}" not in log


def test_an_upload_whose_processes_keep_dying_is_refused_after_the_last_attempt(client, server, tenant):
    """Three claims that never finished (each process died mid-way, the lease lapsed): the next
    claim refuses the file instead of running it a fourth time, and the store goes on."""
    server.worker.stop()
    answer = upload(client, tenant.upload_key, GOOD)
    number = ids.decode("upload", answer["upload_id"])
    with server.hub.engine.begin() as conn:
        conn.execute(
            uploads.update().where(uploads.c.id == number).values(
                status="processing", attempts=3, worker_id="elsewhere:1:dead:0", lease_until=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    Worker(server.hub).run_until_idle()
    record = wait_for_upload(client, tenant, answer["upload_id"])
    assert record["status"] == "invalid"
    assert record["error"] == "the file could not be read: 3 attempts to process it were interrupted"
    worker = Worker(server.hub)
    worker.start()
    try:
        assert upload_and_wait(client, tenant, GOOD)["status"] == "applied"
    finally:
        worker.stop()
