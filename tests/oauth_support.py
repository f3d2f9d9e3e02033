"""Helpers for the OAuth tests: a registered partner, a signed-up user, and the browser step
of the authorization code flow driven by plain HTTP posts of the sign-in and consent forms."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx2 as httpx

from stockhub.services import accounts
from stockhub.services.context import Hub
from support import Tenant

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the test reads the Location header
PASSWORD = "correct horse battery staple"


@dataclass
class Partner:
    client_id: str
    client_secret: str | None

    @property
    def basic(self) -> tuple[str, str]:
        return (self.client_id, self.client_secret or "")


def make_partner(hub: Hub, *, public: bool = False, scopes: list[str] | None = None, name: str = "Till Co POS") -> Partner:
    made = accounts.create_partner(hub, name, [REDIRECT_URI], scopes, public)
    return Partner(made.id, made.secret)


def make_user(hub: Hub, tenant: Tenant, email: str = "owner@acme.test") -> str:
    accounts.create_user(hub, tenant.organization, email, PASSWORD, "owner")
    return email


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class _Forms(HTMLParser):
    """Every form on a page: its action and its named inputs (submit buttons apart)."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": {}, "buttons": []})
        elif tag in ("input", "button") and self.forms and attrs.get("name"):
            if tag == "button" or attrs.get("type") == "submit":
                self.forms[-1]["buttons"].append((attrs["name"], attrs.get("value", "")))
            else:
                self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""


def forms(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form_for(html: str, action: str) -> dict:
    return next(f for f in forms(html) if f["action"] == action)


class Browser:
    """A user agent: keeps the session cookie, follows our redirects, stops at the client's."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)

    def close(self):
        self.http.close()

    def get(self, url: str) -> httpx.Response:
        return self.http.get(url)

    def sign_in(self, page: httpx.Response, email: str, password: str = PASSWORD) -> httpx.Response:
        form = form_for(page.text, "/signin")
        return self.http.post("/signin", data=form["fields"] | {"email": email, "password": password})

    def consent_page(self, authorization_url: str, email: str) -> httpx.Response:
        """Open the authorization URL, signing in when asked; the consent page (or an error)."""
        response = self.http.get(authorization_url)
        if response.status_code == 303 and urlsplit(response.headers["location"]).path == "/signin":
            signed_in = self.sign_in(self.http.get(response.headers["location"]), email)
            assert signed_in.status_code == 303, signed_in.text
            response = self.http.get(signed_in.headers["location"])
        return response

    def decide(self, consent: httpx.Response, decision: str) -> httpx.Response:
        """Post the consent form back to the authorization endpoint it came from."""
        form = next(f for f in forms(consent.text) if ("decision", decision) in f["buttons"])
        assert form["action"] == consent.url.path, (form["action"], consent.url.path)
        return self.http.post(form["action"], data=form["fields"] | {"decision": decision})

    def authorize(self, authorization_url: str, email: str, decision: str = "allow") -> str:
        """The whole browser step; the URL the user agent is sent back to (with code or error)."""
        consent = self.consent_page(authorization_url, email)
        assert consent.status_code == 200, consent.text
        answer = self.decide(consent, decision)
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]


def authorization_url(base_url: str, partner: Partner, scope: str, challenge: str | None, state: str = "st4te", **extra) -> str:
    params = {"response_type": "code", "client_id": partner.client_id, "redirect_uri": REDIRECT_URI, "scope": scope, "state": state}
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return urljoin(base_url, "/oauth/authorize?" + urlencode(params | extra))


def callback_params(location: str) -> dict[str, str]:
    assert location.startswith(REDIRECT_URI), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_for(base_url: str, partner: Partner, email: str, scope: str) -> tuple[str, str]:
    """An authorization code and its PKCE verifier, the user having allowed the request."""
    verifier, challenge = pkce_pair()
    browser = Browser(base_url)
    try:
        params = callback_params(browser.authorize(authorization_url(base_url, partner, scope, challenge), email))
    finally:
        browser.close()
    return params["code"], verifier


def exchange(client: httpx.Client, partner: Partner, code: str, verifier: str | None) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier:
        data["code_verifier"] = verifier
    return client.post("/oauth/token", data=data, auth=partner.basic)


def partner_tokens(client: httpx.Client, partner: Partner, email: str, scope: str) -> dict:
    code, verifier = code_for(str(client.base_url), partner, email, scope)
    response = exchange(client, partner, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str, store: str | None = None) -> dict:
    return {"Authorization": f"Bearer {token}"} | ({"X-Store-Id": store} if store else {})
