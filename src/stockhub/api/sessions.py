"""The browser session: a signed cookie (server secret, HttpOnly, SameSite=Lax, Secure over
https) holding the signed-in user and the CSRF token the forms echo back (double submit)."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from stockhub.errors import Problem
from stockhub.services import accounts
from stockhub.services.context import Hub

COOKIE = "stockhub_session"


def _serializer(hub: Hub) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(hub.secret, salt="stockhub.session")


def read(hub: Hub, request: Request) -> dict:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return {}
    try:
        session = _serializer(hub).loads(raw, max_age=hub.settings.session_hours * 3600)
    except BadSignature:
        return {}
    return session if isinstance(session, dict) else {}


def write(hub: Hub, request: Request, response: Response, session: dict) -> None:
    response.set_cookie(
        COOKIE,
        _serializer(hub).dumps(session),
        max_age=hub.settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def with_csrf(session: dict) -> dict:
    return session if session.get("csrf") else session | {"csrf": secrets.token_urlsafe(24)}


def check_csrf(session: dict, sent: str | None) -> None:
    expected = session.get("csrf")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Problem(403, "Forbidden", "the form's CSRF token does not match this session: reload the page and try again")


def signed_in(hub: Hub, session: dict) -> accounts.User | None:
    number = session.get("user")
    return accounts.get_user(hub, number) if isinstance(number, int) else None


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard"
