"""The `stockhub` command as an operator uses it, against the same database as the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def made(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout)


def test_an_operator_sets_up_a_retailer_and_imports_a_file(run, client, tmp_path):
    org = made(run("org", "create", "Acme Books", "--json"))["id"]
    brand = made(run("brand", "create", "--org", org, "Acme", "--json"))["id"]
    store = made(run("store", "create", "--brand", brand, "--country", "GB", "--city", "York", "Acme York", "--json"))
    token = made(run("token", "create", "--org", org, "--json"))["token"]
    assert len(store["upload_key"]) >= 32 and token.startswith("shk_")
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/v1/stores/{store['id']}", headers=auth).json()["city"] == "York"

    stock_file = tmp_path / "stock.csv"
    stock_file.write_text("barcode,price,quantity\n9780141383743,6.99,3\n9780141383744,6.99,3\n")
    imported = made(run("import", str(stock_file), "--store", store["id"], "--json"))
    assert imported["status"] == "applied" and imported["source"] == "cli" and imported["filename"] == "stock.csv"
    assert imported["counts"]["valid"] == 1 and imported["counts"]["rejected"] == 1
    assert client.get(f"/v1/stores/{store['id']}/stock/9780141383743", headers=auth).json()["on_hand"] == 3

    rotated = made(run("store", "rotate-key", store["id"], "--json"))
    assert rotated["upload_key"] != store["upload_key"]
    assert client.get(f"/upload/{store['upload_key']}").status_code == 404
    assert client.get(f"/upload/{rotated['upload_key']}").status_code == 200


def test_plain_output_and_clear_errors(run):
    org = run("org", "create", "Acme").stdout
    assert org.startswith("organization org_")
    missing = run("brand", "create", "--org", "org_nonexistent", "Acme", ok=False)
    assert missing.returncode == 1 and "organization org_nonexistent was not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    brand = made(run("brand", "create", "--org", org.split()[1], "Acme", "--json"))["id"]
    bad = run("store", "create", "--brand", brand, "--country", "XX", "Nowhere", ok=False)
    assert bad.returncode == 1 and "country" in bad.stderr and "Traceback" not in bad.stderr


def test_two_fresh_installs_hand_out_different_ids(tmp_path):
    """Public ids are keyed by each install's secret: not the same org_/brd_ everywhere, not a counter."""
    stockhub = str(Path(sys.executable).parent / "stockhub")

    def install(name: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {"STOCKHUB_DATA_DIR": str(tmp_path / name)}

        def run(*args: str) -> str:
            done = subprocess.run([stockhub, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            return made(done)["id"]

        return run

    one, two = install("one"), install("two")
    first = [one("org", "create", "Acme"), one("org", "create", "Second")]
    second = [two("org", "create", "Acme"), two("org", "create", "Second")]
    assert all(i.startswith("org_") for i in first + second)
    assert set(first).isdisjoint(second)
    assert first[0][4:8] != first[1][4:8]  # rows 1 and 2 do not give neighbouring ids
    assert one("brand", "create", "--org", first[0], "Acme").startswith("brd_")  # stable across restarts
