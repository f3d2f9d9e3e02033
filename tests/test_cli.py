"""The `stockhub` command as an operator uses it, against the same database as the API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


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


def test_list_and_show_what_the_install_holds(run):
    org = made(run("org", "create", "Acme Books", "--json"))["id"]
    brand = made(run("brand", "create", "--org", org, "Acme", "--json"))["id"]
    store = made(run("store", "create", "--brand", brand, "--country", "GB", "--city", "York", "Acme York", "--json"))
    token = made(run("token", "create", "--org", org, "--label", "till", "--json"))
    partner = made(run("partner", "create", "Till Co", "--redirect-uri", "https://till.example/cb", "--scope", "stock.read", "--json"))

    [listed] = made(run("org", "list", "--json"))
    assert listed["id"] == org and listed["name"] == "Acme Books" and (listed["brands"], listed["stores"]) == (1, 1)
    assert [b["id"] for b in made(run("brand", "list", "--org", org, "--json"))] == [brand]
    [in_brand] = made(run("store", "list", "--brand", brand, "--json"))
    assert in_brand["id"] == store["id"] and in_brand["city"] == "York" and in_brand["status"] == "pending"
    shown = made(run("store", "show", store["id"], "--json"))
    assert shown["organization_id"] == org and shown["partners"] == []
    tokens = run("token", "list", "--org", org, "--json").stdout
    assert [t["id"] for t in json.loads(tokens)] == [token["id"]] and token["token"] not in tokens  # never the secret
    [app] = made(run("partner", "list", "--json"))
    assert app["client_id"] == partner["client_id"] and app["scopes"] == ["stock.read"] and app["stores"] == 0
    assert partner["client_secret"] not in run("partner", "show", partner["client_id"]).stdout

    header, row = run("store", "list").stdout.splitlines()  # a table unless --json
    assert header.split()[:2] == ["id", "organization_id"] and row.split()[:2] == [store["id"], org] and "Acme York" in row
    assert run("org", "show", org).stdout.splitlines()[1].split() == ["name", "Acme", "Books"]


def test_what_is_not_found_is_said_missing_from_the_database_it_looked_in(run, settings):
    from sqlalchemy.engine import make_url

    database = make_url(settings.db_url).render_as_string(hide_password=True)
    for command in (["org", "show", "org_nope"], ["store", "show", "str_nope"], ["store", "list", "--org", "org_nope"], ["partner", "show", "app_nope"]):
        missing = run(*command, ok=False)
        assert missing.returncode == 1 and f"was not found in {database}" in missing.stderr, missing.stderr
        assert "Traceback" not in missing.stderr


def _fresh_install(tmp_path):
    stockhub = str(Path(sys.executable).parent / "stockhub")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {"STOCKHUB_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([stockhub, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 or not ok, done.stderr
        return done

    return run, env


def test_a_migration_is_one_line_and_other_commands_say_nothing_of_it(tmp_path):
    run, _env = _fresh_install(tmp_path)
    first = run("org", "list")
    [line] = first.stderr.splitlines()
    assert "migrated the database sqlite:///" in line and "from empty to" in line
    assert "no organizations in sqlite:///" in first.stdout
    again = run("org", "list")
    assert again.stderr == ""
    assert run("migrate").stdout.strip() == "database is up to date"


def test_demo_env_needs_a_demo_and_says_where_it_looked(tmp_path):
    run, _env = _fresh_install(tmp_path)
    missing = run("demo", "env", ok=False)
    assert missing.returncode == 1 and f"there is no demo in {tmp_path / 'data'}" in missing.stderr
    assert "stockhub serve --demo" in missing.stderr


@pytest.mark.slow
def test_the_ftp_gateway_speaks_ftps_by_default_with_a_certificate_it_makes(tmp_path):
    run, env = _fresh_install(tmp_path)
    org = made(run("org", "create", "Acme", "--json"))["id"]
    brand = made(run("brand", "create", "--org", org, "Acme", "--json"))["id"]
    key = made(run("store", "create", "--brand", brand, "--country", "GB", "York", "--json"))["upload_key"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "ftp.log", "w+")
    gateway = subprocess.Popen([str(Path(sys.executable).parent / "stockhub"), "ftp", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "gateway on" not in (text := (tmp_path / "ftp.log").read_text()):
            assert gateway.poll() is None and time.monotonic() < deadline, text
            time.sleep(0.2)
        assert f"FTPS with the self-signed certificate in {tmp_path / 'data' / 'tls'}" in text and "FTP/FTPS gateway" in text
        listing = subprocess.run(
            ["curl", "-sS", "--ssl-reqd", "-k", "--max-time", "30", f"ftp://apikey:{key}@127.0.0.1:{port}/"], capture_output=True, text=True, timeout=60
        )
        assert listing.returncode == 0, listing.stderr
    finally:
        gateway.terminate()
        gateway.wait(10)
        log.close()
