"""Organizations' brands and stores over HTTP, and who may see them."""

from __future__ import annotations

import json
import re

from support import make_tenant


def test_a_store_is_created_with_defaults_from_its_country_and_a_one_time_upload_key(client, tenant):
    made = client.post(
        f"/v1/brands/{tenant.brand}/stores",
        json={"name": "High Street", "country": "gb", "postcode": "N1 8EA", "city": "London", "latitude": 51.5, "longitude": -0.1},
        headers=tenant.auth,
    )
    assert made.status_code == 201, made.text
    store = made.json()
    assert store["currency"] == "GBP" and store["timezone"] == "Europe/London" and store["country"] == "GB"
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", store["upload_key"])
    assert store["id"].startswith("str_")

    shown_again = client.get(f"/v1/stores/{store['id']}", headers=tenant.auth).json()
    assert "upload_key" not in shown_again and shown_again["name"] == "High Street"
    listed = client.get(f"/v1/brands/{tenant.brand}/stores", headers=tenant.auth).json()
    assert {s["id"] for s in listed["items"]} == {tenant.store, store["id"]}
    assert all("upload_key" not in s for s in listed["items"])


def test_store_fields_are_validated_one_by_one(client, tenant):
    bad = client.post(
        f"/v1/brands/{tenant.brand}/stores", json={"name": "X", "country": "XX", "latitude": 95}, headers=tenant.auth
    )
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["status"] == 422 and bad.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in problem["errors"]}
    assert {"country", "latitude"} <= fields

    several_zones = client.post(f"/v1/brands/{tenant.brand}/stores", json={"name": "NYC", "country": "US"}, headers=tenant.auth)
    assert several_zones.status_code == 422
    assert "several timezones" in several_zones.text
    given = client.post(
        f"/v1/brands/{tenant.brand}/stores", json={"name": "NYC", "country": "US", "timezone": "America/New_York"}, headers=tenant.auth
    )
    assert given.status_code == 201 and given.json()["currency"] == "USD"


def test_a_store_has_a_structured_address_set_by_post_patch_and_the_cli(client, tenant, run):
    address = {"address_line1": "233 S Wacker Dr", "address_line2": "Floor 3", "city": "Chicago", "postal_code": "60606",
               "state": "IL", "latitude": 41.8789, "longitude": -87.6359}
    made = client.post(f"/v1/brands/{tenant.brand}/stores", json={"name": "Loop", "country": "US", "timezone": "America/Chicago"} | address, headers=tenant.auth)
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in address} == address and made.json()["country"] == "US"
    assert isinstance(made.json()["latitude"], float)

    patched = client.patch(f"/v1/stores/{made.json()['id']}", json={"address_line2": None, "state": "Illinois"}, headers=tenant.auth).json()
    assert patched["address_line2"] is None and patched["state"] == "Illinois" and patched["address_line1"] == "233 S Wacker Dr"
    for field, bad in (("latitude", {"latitude": -90.5, "longitude": 0}), ("longitude", {"latitude": 0, "longitude": 180.5})):
        refused = client.patch(f"/v1/stores/{tenant.store}", json=bad, headers=tenant.auth)
        assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == [field]
    assert client.get(f"/v1/stores/{tenant.store}", headers=tenant.auth).json()["latitude"] is None  # nothing changed

    cli = json.loads(run("store", "create", "--brand", tenant.brand, "--country", "GB", "--address-line1", "1 Coney Street",
                         "--address-line2", "Rear", "--city", "York", "--postal-code", "YO1 9QL", "--state", "North Yorkshire",
                         "--latitude", "53.959", "--longitude", "-1.084", "Acme York", "--json").stdout)
    shown = client.get(f"/v1/stores/{cli['id']}", headers=tenant.auth).json()
    assert (shown["address_line1"], shown["address_line2"], shown["city"], shown["postal_code"], shown["state"]) == (
        "1 Coney Street", "Rear", "York", "YO1 9QL", "North Yorkshire")
    assert (shown["latitude"], shown["longitude"]) == (53.959, -1.084)
    out_of_range = run("store", "create", "--brand", tenant.brand, "--country", "GB", "--latitude", "91", "--longitude", "0", "X", ok=False)
    assert out_of_range.returncode == 1 and "latitude" in out_of_range.stderr


def test_patching_a_store_changes_only_what_is_sent(client, tenant):
    patched = client.patch(f"/v1/stores/{tenant.store}", json={"city": "Leeds"}, headers=tenant.auth)
    assert patched.status_code == 200
    assert patched.json()["city"] == "Leeds" and patched.json()["currency"] == "GBP"
    moved = client.patch(f"/v1/stores/{tenant.store}", json={"country": "DE"}, headers=tenant.auth).json()
    assert moved["currency"] == "EUR" and moved["timezone"] == "Europe/Berlin"
    unknown_field = client.patch(f"/v1/stores/{tenant.store}", json={"upload_key_hash": "x"}, headers=tenant.auth)
    assert unknown_field.status_code == 422


def test_rotating_the_upload_key_retires_the_old_one(client, tenant):
    assert client.get(f"/upload/{tenant.upload_key}").status_code == 200
    rotated = client.post(f"/v1/stores/{tenant.store}/upload-key", headers=tenant.auth)
    assert rotated.status_code == 200
    new_key = rotated.json()["upload_key"]
    assert new_key != tenant.upload_key
    assert client.get(f"/upload/{tenant.upload_key}").status_code == 404
    assert client.get(f"/upload/{new_key}").status_code == 200


def test_brands_page_with_an_opaque_token(client, tenant):
    for n in range(4):
        assert client.post("/v1/brands", json={"name": f"Brand {n}"}, headers=tenant.auth).status_code == 201
    seen, token = [], None
    while True:
        params = {"limit": 2} | ({"token": token} if token else {})
        page = client.get("/v1/brands", params=params, headers=tenant.auth).json()
        seen += [b["name"] for b in page["items"]]
        token = page["next_token"]
        if token is None:
            break
    assert len(seen) == 5 and len(set(seen)) == 5
    garbage = client.get("/v1/brands", params={"token": "not-a-token"}, headers=tenant.auth)
    assert garbage.status_code == 400 and garbage.json()["errors"][0]["field"] == "token"


def test_no_token_or_a_wrong_token_is_refused(client, tenant):
    missing = client.get("/v1/brands")
    assert missing.status_code == 401 and missing.json()["title"] == "Unauthorized"
    assert client.get("/v1/brands", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_another_organizations_things_do_not_exist_for_you(client, hub, tenant):
    other = make_tenant(hub, "Other Shop")
    for path in (
        f"/v1/stores/{other.store}",
        f"/v1/brands/{other.brand}/stores",
        f"/v1/stores/{other.store}/stock",
        f"/v1/stores/{other.store}/uploads",
    ):
        response = client.get(path, headers=tenant.auth)
        assert response.status_code == 404, path
    assert client.post(f"/v1/stores/{other.store}/upload-key", headers=tenant.auth).status_code == 404
    assert client.patch(f"/v1/stores/{other.store}", json={"city": "x"}, headers=tenant.auth).status_code == 404
    assert client.post(f"/v1/brands/{other.brand}/stores", json={"name": "x", "country": "GB"}, headers=tenant.auth).status_code == 404
    assert client.get("/v1/brands", headers=tenant.auth).json()["items"][0]["id"] == tenant.brand


def test_malformed_or_foreign_ids_are_not_found(client, tenant):
    guessed = tenant.store[:-1] + ("a" if tenant.store[-1] != "a" else "b")  # one character off
    for store_id in (guessed, "str_zzzzzzzzzzz", "str_" + tenant.brand[4:], tenant.brand, "str_" + "9" * 40, "str_!!", "str_0"):
        response = client.get(f"/v1/stores/{store_id}", headers=tenant.auth)
        assert response.status_code == 404, (store_id, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
