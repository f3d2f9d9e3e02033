"""Accounts and partner registration as an operator does them: the CLI and the admin API."""

from __future__ import annotations

import json

from oauth_support import PASSWORD, REDIRECT_URI, Browser


def test_an_operator_creates_a_user_who_can_sign_in(run, server):
    org = json.loads(run("org", "create", "Acme Books", "--json").stdout)["id"]
    user = json.loads(run("user", "create", "--org", org, "--role", "owner", "Owner@Acme.test", "--password-stdin", "--json", stdin=PASSWORD + "\n").stdout)
    assert user["id"].startswith("usr_") and user["email"] == "owner@acme.test" and user["role"] == "owner"
    again = run("user", "create", "--org", org, "owner@acme.test", "--password-stdin", ok=False, stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "exists already" in again.stderr and "Traceback" not in again.stderr
    short = run("user", "create", "--org", org, "x@acme.test", "--password-stdin", ok=False, stdin="short\n")
    assert short.returncode == 1 and "password" in short.stderr

    browser = Browser(server.url)
    try:
        signed_in = browser.sign_in(browser.get("/signin?next=/oauth/authorize"), "owner@acme.test")
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/oauth/authorize"
        offsite = browser.sign_in(browser.get("/signin?next=//evil.test/"), "owner@acme.test")
        assert offsite.headers["location"] == "/dashboard"  # never an open redirect
    finally:
        browser.close()


def test_partners_are_registered_by_cli_or_admin_api_with_the_secret_shown_once(run, client):
    made = json.loads(
        run("partner", "create", "Till Co", "--redirect-uri", REDIRECT_URI, "--scope", "stock.read", "--scope", "organization.read", "--json").stdout
    )
    assert made["client_id"].startswith("app_") and made["client_secret"].startswith("shs_")
    public = run("partner", "create", "Shop app", "--redirect-uri", REDIRECT_URI, "--public").stdout
    assert "public client: no secret" in public
    bad = run("partner", "create", "Evil", "--redirect-uri", "http://evil.test/cb", ok=False)
    assert bad.returncode == 1 and "redirect" in bad.stderr

    admin = json.loads(run("admin-token", "create", "--json").stdout)["token"]
    auth = {"Authorization": f"Bearer {admin}"}
    created = client.post(
        "/admin/v1/partners", json={"name": "Marketplace", "redirect_uris": ["https://market.test/cb"], "scopes": ["stock.read"]}, headers=auth
    )
    assert created.status_code == 201 and created.json()["client_secret"]
    listed = client.get("/admin/v1/partners", headers=auth).json()["items"]
    assert [p["name"] for p in listed] == ["Till Co", "Shop app", "Marketplace"]
    assert all("secret" not in json.dumps(p) for p in listed)
    unknown_scope = client.post(
        "/admin/v1/partners", json={"name": "X", "redirect_uris": ["https://x.test/cb"], "scopes": ["everything"]}, headers=auth
    )
    assert unknown_scope.status_code == 422 and unknown_scope.json()["errors"][0]["field"] == "scopes"

    org = json.loads(run("org", "create", "Acme", "--json").stdout)["id"]
    org_token = json.loads(run("token", "create", "--org", org, "--json").stdout)["token"]
    assert client.get("/admin/v1/partners", headers={"Authorization": f"Bearer {org_token}"}).status_code == 403
    assert client.get("/v1/brands", headers=auth).status_code == 403  # an admin token is no organization's


def test_a_partners_user_is_made_by_the_cli_and_signs_in_to_the_partner_pages(run, server):
    made = json.loads(run("partner", "create", "Till Co", "--redirect-uri", REDIRECT_URI, "--json").stdout)
    user = json.loads(run("user", "create", "--partner", made["client_id"], "ops@till.test", "--password-stdin", "--json", stdin=PASSWORD + "\n").stdout)
    assert user["id"].startswith("usr_")
    neither = run("user", "create", "x@till.test", "--password-stdin", ok=False, stdin=PASSWORD + "\n")
    assert neither.returncode != 0 and "--org" in neither.stderr and "--partner" in neither.stderr
    unknown = run("user", "create", "--partner", "app_nope", "y@till.test", "--password-stdin", ok=False, stdin=PASSWORD + "\n")
    assert unknown.returncode == 1 and "not found" in unknown.stderr

    browser = Browser(server.url)
    try:
        signed_in = browser.sign_in(browser.get("/signin?next=/partner"), "ops@till.test")
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/partner"
        page = browser.get("/partner")
        assert page.status_code == 200 and "No store is connected to you yet." in page.text
    finally:
        browser.close()
