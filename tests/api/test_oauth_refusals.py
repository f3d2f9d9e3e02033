"""What the authorization server refuses: every broken or hostile step of the flow."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from oauth_support import (
    REDIRECT_URI,
    Browser,
    authorization_url,
    bearer,
    callback_params,
    code_for,
    exchange,
    make_partner,
    make_user,
    partner_tokens,
    pkce_pair,
)
from stockhub.db.tables import api_tokens, utcnow
from stockhub.services import accounts

SCOPE = "organization.read stock.read"
ORG = "/organization/v1/organization"


def _refused(response, error: str, status: int = 400):
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text


def _refresh(client, partner, refresh_token: str, **extra):
    return client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token} | extra, auth=partner.basic)


def test_a_missing_or_wrong_pkce_verifier_is_refused(server, client, hub, tenant):
    partner, email = make_partner(hub), make_user(hub, tenant)
    code, _ = code_for(server.url, partner, email, SCOPE)
    _refused(exchange(client, partner, code, None), "invalid_request")
    code, _ = code_for(server.url, partner, email, SCOPE)
    _refused(exchange(client, partner, code, pkce_pair()[0]), "invalid_grant")


def test_plain_pkce_is_refused_and_public_clients_must_use_pkce(server, hub, tenant):
    email = make_user(hub, tenant)
    browser = Browser(server.url)
    try:
        confidential = make_partner(hub)
        verifier, _ = pkce_pair()
        plain = authorization_url(server.url, confidential, SCOPE, None, code_challenge=verifier, code_challenge_method="plain")
        refused = browser.get(plain)
        assert refused.status_code == 302 and callback_params(refused.headers["location"])["error"] == "invalid_request"

        public = make_partner(hub, public=True, name="Shop app")
        without = browser.get(authorization_url(server.url, public, SCOPE, None))
        assert without.status_code == 302
        params = callback_params(without.headers["location"])
        assert params["error"] == "invalid_request" and params["state"] == "st4te"
    finally:
        browser.close()


def test_a_public_client_exchanges_its_code_with_the_verifier_and_no_secret(server, client, hub, tenant):
    public = make_partner(hub, public=True, name="Shop app")
    code, verifier = code_for(server.url, public, make_user(hub, tenant), SCOPE)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "client_id": public.client_id}
    _refused(client.post("/oauth/token", data=data), "invalid_request")  # no verifier
    code, verifier = code_for(server.url, public, "owner@acme.test", SCOPE)
    issued = client.post("/oauth/token", data=data | {"code": code, "code_verifier": verifier})
    assert issued.status_code == 200, issued.text


def test_a_redirect_uri_that_is_not_registered_exactly_is_never_redirected_to(server, client, hub, tenant):
    partner, email = make_partner(hub), make_user(hub, tenant)
    _, challenge = pkce_pair()
    browser = Browser(server.url)
    try:
        for uri in ("http://127.0.0.1:9/callback/", "http://127.0.0.1:9/callback?x=1", "https://evil.test/callback"):
            page = browser.get(authorization_url(server.url, partner, SCOPE, challenge, redirect_uri=uri))
            assert page.status_code == 400 and "location" not in page.headers
            assert "not supported by client" in page.text
    finally:
        browser.close()
    code, verifier = code_for(server.url, partner, email, SCOPE)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI + "/", "code_verifier": verifier}
    _refused(client.post("/oauth/token", data=data, auth=partner.basic), "invalid_grant")


def test_a_replayed_code_is_refused_and_revokes_what_it_gave(server, client, hub, tenant):
    partner = make_partner(hub)
    code, verifier = code_for(server.url, partner, make_user(hub, tenant), SCOPE)
    first = exchange(client, partner, code, verifier)
    assert first.status_code == 200
    _refused(exchange(client, partner, code, verifier), "invalid_grant")
    assert client.get(ORG, headers=bearer(first.json()["access_token"])).status_code == 401
    _refused(_refresh(client, partner, first.json()["refresh_token"]), "invalid_grant")


def test_another_clients_code_and_a_wrong_secret_are_refused(server, client, hub, tenant):
    partner, other = make_partner(hub), make_partner(hub, name="Other app")
    code, verifier = code_for(server.url, partner, make_user(hub, tenant), SCOPE)
    _refused(exchange(client, other, code, verifier), "invalid_grant")
    wrong = client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
        auth=(partner.client_id, "not-the-secret"),
    )
    _refused(wrong, "invalid_client", 401)


def test_an_expired_access_token_is_refused(server, client, hub, tenant):
    partner = make_partner(hub)
    tokens = partner_tokens(client, partner, make_user(hub, tenant), SCOPE)
    assert client.get(ORG, headers=bearer(tokens["access_token"])).status_code == 200
    with hub.engine.begin() as conn:  # time passes: the token's 20 hours are over
        conn.execute(update(api_tokens).where(api_tokens.c.kind == "access").values(expires_at=utcnow() - timedelta(seconds=1)))
    accounts.forget_tokens(hub)  # the server read the token before this edit behind its back
    expired = client.get(ORG, headers=bearer(tokens["access_token"]))
    assert expired.status_code == 401 and expired.headers["www-authenticate"] == "Bearer"


def test_reusing_a_refresh_token_revokes_the_whole_family(server, client, hub, tenant):
    partner = make_partner(hub)
    tokens = partner_tokens(client, partner, make_user(hub, tenant), SCOPE)
    rotated = _refresh(client, partner, tokens["refresh_token"])
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert client.get(ORG, headers=bearer(fresh["access_token"])).status_code == 200

    _refused(_refresh(client, partner, tokens["refresh_token"]), "invalid_grant")  # the spent one, again
    assert client.get(ORG, headers=bearer(fresh["access_token"])).status_code == 401
    _refused(_refresh(client, partner, fresh["refresh_token"]), "invalid_grant")


def test_scopes_cannot_grow(server, client, hub, tenant):
    email = make_user(hub, tenant)
    narrow = make_partner(hub, scopes=["organization.read"], name="Narrow app")
    _, challenge = pkce_pair()
    browser = Browser(server.url)
    try:
        browser.sign_in(browser.get("/signin"), email)
        asked = browser.get(authorization_url(server.url, narrow, "organization.read stock.write", challenge))
        assert asked.status_code == 302 and callback_params(asked.headers["location"])["error"] == "invalid_scope"
    finally:
        browser.close()

    partner = make_partner(hub)
    tokens = partner_tokens(client, partner, email, "organization.read")
    _refused(_refresh(client, partner, tokens["refresh_token"], scope="organization.read stock.read"), "invalid_scope")
    lacking = client.get(f"/v1/stores/{tenant.store}/stock", headers=bearer(tokens["access_token"]))
    assert lacking.status_code == 403 and lacking.json()["required_scope"] == "stock.read"


def test_a_revoked_access_token_is_refused(server, client, hub, tenant):
    partner = make_partner(hub)
    tokens = partner_tokens(client, partner, make_user(hub, tenant), SCOPE)
    revoked = client.post("/oauth/revoke", data={"token": tokens["access_token"], "token_type_hint": "access_token"}, auth=partner.basic)
    assert revoked.status_code == 200
    assert client.get(ORG, headers=bearer(tokens["access_token"])).status_code == 401
    assert _refresh(client, partner, tokens["refresh_token"]).status_code == 200  # the grant itself lives on


def test_denying_consent_answers_access_denied(server, hub, tenant):
    partner, email = make_partner(hub), make_user(hub, tenant)
    _, challenge = pkce_pair()
    browser = Browser(server.url)
    try:
        params = callback_params(browser.authorize(authorization_url(server.url, partner, SCOPE, challenge), email, "deny"))
    finally:
        browser.close()
    assert params["error"] == "access_denied" and params["state"] == "st4te" and "code" not in params


def test_the_consent_form_needs_the_sessions_csrf_token(server, hub, tenant):
    partner, email = make_partner(hub), make_user(hub, tenant)
    _, challenge = pkce_pair()
    browser = Browser(server.url)
    try:
        consent = browser.consent_page(authorization_url(server.url, partner, SCOPE, challenge), email)
        assert "Till Co POS" in consent.text and "Acme Books store" in consent.text and "stock.read" in consent.text
        cookie = consent.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # plain http here
        behind_tls = browser.http.get("/signin", headers={"X-Forwarded-Proto": "https"})  # a TLS proxy on loopback
        assert "secure" in behind_tls.headers["set-cookie"].lower()
        forged = browser.http.post("/oauth/authorize", data={"decision": "allow", "csrf_token": "forged"})
        assert forged.status_code == 403
        wrong_password = browser.sign_in(browser.get("/signin"), email, "not the password")
        assert wrong_password.status_code == 401 and "Wrong email or password" in wrong_password.text
    finally:
        browser.close()


def test_oauth_is_refused_over_plain_http_off_loopback(client, hub):
    partner = make_partner(hub)
    response = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=partner.basic, headers={"Host": "stockhub.example"}
    )
    assert response.status_code == 400 and "https" in response.json()["detail"]
