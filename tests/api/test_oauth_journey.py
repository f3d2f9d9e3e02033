"""The partner journey with an off-the-shelf OAuth 2 client (authlib's httpx client): authorize
with PKCE (the browser step as plain form posts), walk the organization, connect a store, fetch
its upload key, upload stock with it and read the stock back as the partner."""

from __future__ import annotations

import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from oauth_support import REDIRECT_URI, Browser, make_partner, make_user
from support import upload, wait_for_upload

BOOK = "9780141383743"
SCOPES = "organization.read organization.service_integration stock.read uploads.read"


@pytest.fixture
def partner_client(server, hub):
    partner = make_partner(hub)
    oauth = OAuth2Client(
        partner.client_id, partner.client_secret, scope=SCOPES, redirect_uri=REDIRECT_URI,
        code_challenge_method="S256", base_url=server.url, timeout=30,
    )
    yield oauth
    oauth.close()


def authorize(server, oauth: OAuth2Client, email: str, paths: tuple[str, str] = ("/oauth/authorize", "/oauth/token")) -> dict:
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(f"{server.url}{paths[0]}", code_verifier=verifier)
    browser = Browser(server.url)
    try:
        callback = browser.authorize(url, email)
    finally:
        browser.close()
    return oauth.fetch_token(f"{server.url}{paths[1]}", authorization_response=callback, code_verifier=verifier, state=state)


def test_a_partner_onboards_a_store_and_reads_its_stock(server, client, hub, tenant, partner_client):
    email = make_user(hub, tenant)
    token = authorize(server, partner_client, email)
    assert token["token_type"].lower() == "bearer" and token["expires_in"] == 20 * 3600
    assert set(token["scope"].split()) == set(SCOPES.split()) and token["refresh_token"]

    organization = partner_client.get("/organization/v1/organization").json()
    assert organization == {"id": tenant.organization, "name": "Acme Books"}
    brands = partner_client.get("/organization/v1/organization/brands", params={"limit": 10}).json()
    assert [b["id"] for b in brands["items"]] == [tenant.brand] and "offsetToken" not in brands
    stores = partner_client.get(f"/organization/v1/organization/brands/{tenant.brand}/stores", params={"limit": 10}).json()
    assert [s["id"] for s in stores["items"]] == [tenant.store]

    connection = f"/organization/v1/organization/brands/{tenant.brand}/stores/{tenant.store}/connection"
    assert partner_client.get(connection).status_code == 404
    assert partner_client.post(connection, json={"storeId": "till-co-42"}).status_code == 204
    assert partner_client.get(connection).json() == {"storeId": "till-co-42"}
    again = partner_client.post(connection, json={"storeId": "till-co-43"})
    assert again.status_code == 409 and set(again.json()) == {"message", "details"}

    as_store = {"X-Store-Id": "till-co-42"}
    key = partner_client.get(f"/v1/stores/{tenant.store}/upload-key", headers=as_store)
    assert key.status_code == 200 and key.json()["upload_key"] == tenant.upload_key

    sent = upload(client, key.json()["upload_key"], f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    assert wait_for_upload(client, tenant, sent["upload_id"])["status"] == "applied"
    level = partner_client.get(f"/v1/stores/{tenant.store}/stock/{BOOK}", headers=as_store)
    assert level.status_code == 200 and level.json()["on_hand"] == 3
    listed = partner_client.get(f"/v1/stores/{tenant.store}/uploads", headers=as_store).json()
    assert [u["id"] for u in listed["items"]] == [sent["upload_id"]]

    # replacing the partner's store id: DELETE then POST
    assert partner_client.delete(connection).status_code == 204
    assert partner_client.post(connection, json={"storeId": "till-co-99"}).status_code == 204
    assert partner_client.get(f"/v1/stores/{tenant.store}/stock/{BOOK}", headers=as_store).status_code == 404
    assert partner_client.get(f"/v1/stores/{tenant.store}/stock/{BOOK}", headers={"X-Store-Id": "till-co-99"}).status_code == 200


def test_refresh_rotates_and_revocation_ends_the_grant(server, hub, tenant, partner_client):
    token = authorize(server, partner_client, make_user(hub, tenant))
    renewed = partner_client.refresh_token(f"{server.url}/oauth/token")
    assert renewed["refresh_token"] != token["refresh_token"] and renewed["access_token"] != token["access_token"]
    assert partner_client.get("/organization/v1/organization").status_code == 200

    partner_client.revoke_token(f"{server.url}/oauth/revoke", renewed["refresh_token"], token_type_hint="refresh_token")
    gone = partner_client.get("/organization/v1/organization")
    assert gone.status_code == 401 and "message" in gone.json()


def test_client_credentials_give_a_partner_level_token_that_acts_only_through_connections(server, client, hub, tenant):
    partner = make_partner(hub, name="Marketplace")
    oauth = OAuth2Client(partner.client_id, partner.client_secret, scope="organization.read stock.read", base_url=server.url)
    try:
        token = oauth.fetch_token(f"{server.url}/oauth/token", grant_type="client_credentials")
        assert "refresh_token" not in token
        refused = oauth.get("/organization/v1/organization")
        assert refused.status_code == 403 and "authorization code" in refused.json()["message"]
        assert oauth.get(f"/v1/stores/{tenant.store}/stock").status_code == 404
    finally:
        oauth.close()


def test_metadata_describes_the_server(client):
    metadata = AuthorizationServerMetadata(client.get("/.well-known/oauth-authorization-server").json())
    metadata.validate()  # authlib's RFC 8414 checks (the issuer is loopback http here)
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "uploads.read" in metadata["scopes_supported"]


def test_the_partner_reads_the_current_upload_key_even_after_rotation(server, client, hub, tenant, partner_client):
    from sqlalchemy import update

    from stockhub.db.tables import stores

    authorize(server, partner_client, make_user(hub, tenant))
    connection = f"/organization/v1/organization/brands/{tenant.brand}/stores/{tenant.store}/connection"
    assert partner_client.post(connection, json={"storeId": "till-7"}).status_code == 204
    key_url, as_store = f"/v1/stores/{tenant.store}/upload-key", {"X-Store-Id": "till-7"}

    with hub.engine.begin() as conn:  # a key made before keys were sealed
        conn.execute(update(stores).values(upload_key_sealed=None))
    before = partner_client.get(key_url, headers=as_store)
    assert before.status_code == 409 and "rotate" in before.json()["detail"]

    rotated = client.post(key_url, headers=tenant.auth).json()["upload_key"]
    assert partner_client.get(key_url, headers=as_store).json()["upload_key"] == rotated
    assert partner_client.post(key_url, headers=as_store).status_code == 404  # rotating is the retailer's


OTTER_PATHS = ("/v1/auth/oauth2/authorize", "/v1/auth/token")


def test_an_otter_client_authorizes_at_otters_paths_and_reads_otters_address_object(server, client, hub, tenant, partner_client):
    address = {"address_line1": "1 Upper Street", "address_line2": "Unit 4", "city": "London", "postal_code": "N1 0PN",
               "state": "Greater London", "latitude": 51.5362, "longitude": -0.1033}
    assert client.patch(f"/v1/stores/{tenant.store}", json=address, headers=tenant.auth).status_code == 200

    token = authorize(server, partner_client, make_user(hub, tenant), OTTER_PATHS)
    assert token["token_type"].lower() == "bearer" and set(token["scope"].split()) == set(SCOPES.split())
    store = partner_client.get(f"/organization/v1/organization/brands/{tenant.brand}/stores/{tenant.store}")
    assert store.status_code == 200
    assert store.json()["address"] == {
        "fullAddress": "1 Upper Street, Unit 4, London, Greater London N1 0PN, GB",
        "addressLines": ["1 Upper Street", "Unit 4"],
        "city": "London",
        "postalCode": "N1 0PN",
        "state": "Greater London",
        "countryCode": "GB",
        "location": {"latitude": 51.5362, "longitude": -0.1033},
    }
    listed = partner_client.get(f"/organization/v1/organization/brands/{tenant.brand}/stores", params={"limit": "5"}).json()
    assert [s["address"] for s in listed["items"]] == [store.json()["address"]]

    renewed = partner_client.refresh_token(f"{server.url}{OTTER_PATHS[1]}")
    assert renewed["access_token"] != token["access_token"]
    assert partner_client.get("/organization/v1/organization").status_code == 200

    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["otter_authorization_endpoint"] == f"{server.url}{OTTER_PATHS[0]}"
    assert metadata["otter_token_endpoint"] == f"{server.url}{OTTER_PATHS[1]}"


def test_an_otter_client_gets_a_client_credentials_token_at_otters_token_path(server, hub):
    partner = make_partner(hub, name="Marketplace")
    oauth = OAuth2Client(partner.client_id, partner.client_secret, scope="organization.read", base_url=server.url)
    try:
        token = oauth.fetch_token(f"{server.url}{OTTER_PATHS[1]}", grant_type="client_credentials")
        assert token["access_token"] and token["scope"] == "organization.read"
    finally:
        oauth.close()
