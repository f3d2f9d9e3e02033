"""The `stockhub` command as an operator uses it, against the same database as the API."""

from __future__ import annotations

import json
import subprocess


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
