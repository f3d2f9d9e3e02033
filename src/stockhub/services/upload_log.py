"""`upload_log.txt` in a store's FTP folder: what became of the store's latest upload.

NearSt's gateway keeps this file for POS vendors, who download it to see why a file was refused
without any other access. It is rewritten after each processed upload of the store, whatever
the way in (FTP, HTTP, CLI), so it always describes the latest one.
"""

from __future__ import annotations

from stockhub import ids, representations
from stockhub.services import uploads
from stockhub.services.context import Hub

FILENAME = "upload_log.txt"
SHOWN_REJECTIONS = 20


def store_folder(store: int) -> str:
    """The storage folder of the store's FTP files (named by its public id); the gateway confines a login to it."""
    return f"ftp/{ids.encode('store', store)}"


def write_upload_log(hub: Hub, store: int, upload_id: int) -> str:
    """Put the store's upload_log.txt in storage (whole: a download never sees half a log); returns its key."""
    record = representations.upload(*uploads.get_upload(hub, None, ids.encode("upload", upload_id)))
    key = f"{store_folder(store)}/{FILENAME}"
    hub.storage.put(key, describe(record).encode("utf-8"))
    return key


def describe(record: dict) -> str:
    counts = record["counts"]
    lines = [
        "stockhub upload log: the latest upload of this store",
        "",
        f"upload:    {record['id']}",
        f"file:      {uploads.spreadsheet_safe(record['filename'])} ({record['size_bytes']} bytes, {record['type']} file, received over {record['source']})",
        f"received:  {record['received_at']}",
        f"processed: {record['finished_at']}",
        f"status:    {record['status']}",
    ]
    if record["error"]:
        lines.append(f"reason:    {record['error']}")
    if counts["lines"] is not None:
        lines.append(
            f"lines:     {counts['lines']} ({counts['valid']} valid, {counts['rejected']} rejected,"
            f" {counts['superseded']} superseded by a later row)"
        )
        if counts["in_stock_valid"] is not None:
            lines.append(f"in stock:  {counts['in_stock_valid']}")
        lines.append(f"changed:   {counts['changed']}")
    lines.append("warnings:  " + ("none" if not record["warnings"] else ""))
    lines += [f"  - {warning}" for warning in record["warnings"]]
    rejections = [r for r in record["rejections"] if not r["reason"].startswith("superseded by row")]
    if rejections:
        lines += ["", f"first rejected rows (up to {SHOWN_REJECTIONS}):"]
        lines += [
            f"  row {r['row']}, {r['field']} {uploads.spreadsheet_safe(r['value'])!r}: {r['reason']}" if r["value"] is not None
            else f"  row {r['row']}, {r['field']} (empty): {r['reason']}"
            for r in rejections[:SHOWN_REJECTIONS]
        ]  # fmt: skip
        lines.append(f"every rejected row: GET /v1/uploads/{record['id']}/rejections.csv")
    return "\n".join(lines) + "\n"
