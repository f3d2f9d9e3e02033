"""Organization users (Argon2 passwords), partner applications, platform admin tokens, and the
principal a bearer token stands for."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from stockhub import ids, security
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import api_tokens, organizations, partners, store_connections, users, utcnow
from stockhub.domain.access import ALL_SCOPES, Principal, scope_list
from stockhub.errors import FieldError, conflict, invalid, not_found
from stockhub.services.context import Hub
from stockhub.services.tenancy import Created, validated_name

ROLES = ("owner", "staff")
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user is unknown, so both answers take as long; made on first
    use, not at import (an argon2 hash costs every process start a fraction of a second)."""
    return _hasher.hash("not a password anyone has")


# --- users -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A retailer's user (`organization`) or a partner's (`partner`): one of the two."""

    id: int
    organization: int | None
    email: str
    role: str
    partner: int | None = None


def create_user(hub: Hub, organization_id: str, email: str, password: str, role: str = "staff") -> Created:
    email = _valid_email(email)
    if role not in ROLES:
        raise invalid(f"role must be one of {', '.join(ROLES)}", [FieldError("role", "unknown role")])
    if len(password) < 10:
        raise invalid("the password is too short", [FieldError("password", "must have at least 10 characters")])
    organization = ids.decode("organization", organization_id)
    try:
        with transaction(hub.engine) as conn:
            if organization is None or conn.execute(select(organizations.c.id).where(organizations.c.id == organization)).first() is None:
                raise not_found(f"organization {organization_id}")
            number = conn.execute(
                users.insert().values(organization_id=organization, email=email, password_hash=_hasher.hash(password), role=role)
            ).inserted_primary_key[0]
    except IntegrityError:
        raise conflict(f"a user with the email {email} exists already") from None
    return Created(ids.encode("user", number))


def create_partner_user(hub: Hub, partner_id: str, email: str, password: str) -> Created:
    """A partner's user: signs in to the partner pages of the dashboard and gets the partner's mail."""
    email = _valid_email(email)
    if len(password) < 10:
        raise invalid("the password is too short", [FieldError("password", "must have at least 10 characters")])
    partner = ids.decode("partner", partner_id)
    try:
        with transaction(hub.engine) as conn:
            if partner is None or conn.execute(select(partners.c.id).where(partners.c.id == partner)).first() is None:
                raise not_found(f"partner {partner_id}")
            number = conn.execute(
                users.insert().values(partner_id=partner, email=email, password_hash=_hasher.hash(password), role="staff")
            ).inserted_primary_key[0]
    except IntegrityError:
        raise conflict(f"a user with the email {email} exists already") from None
    return Created(ids.encode("user", number))


def authenticate_user(hub: Hub, email: str, password: str) -> User | None:
    with reading(hub.engine) as conn:
        row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
    try:
        _hasher.verify(row.password_hash if row else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    return _user(row) if row else None


def get_user(hub: Hub, number: int) -> User | None:
    with reading(hub.engine) as conn:
        row = conn.execute(select(users).where(users.c.id == number)).first()
    return _user(row) if row else None


def _user(row) -> User:
    return User(row.id, row.organization_id, row.email, row.role, row.partner_id)


def _valid_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not (at and local and "." in domain and len(email) <= 320 and " " not in email):
        raise invalid("the email address is not valid", [FieldError("email", "not an email address")])
    return email


# --- partner applications --------------------------------------------------------------------


def create_partner(hub: Hub, name: str, redirect_uris: list[str], scopes: list[str] | None, public: bool) -> Created:
    """Register a partner application; the client secret (confidential clients) is shown only now."""
    name = validated_name(name)
    uris = [_valid_redirect_uri(uri) for uri in redirect_uris]
    if not uris:
        raise invalid("give at least one redirect URI", [FieldError("redirect_uris", "required")])
    wanted = scopes or sorted(ALL_SCOPES)
    unknown = [s for s in wanted if s not in ALL_SCOPES]
    if unknown:
        raise invalid(f"unknown scopes: {', '.join(unknown)}", [FieldError("scopes", f"unknown scope {s}") for s in unknown])
    secret = None if public else security.new_key("shs_")
    with transaction(hub.engine) as conn:
        number = conn.execute(
            partners.insert().values(
                name=name,
                client_secret_hash=None if secret is None else security.key_hash(hub.secret, secret),
                redirect_uris=json.dumps(uris),
                scopes=" ".join(wanted),
            )
        ).inserted_primary_key[0]
    return Created(ids.encode("partner", number), secret)


def list_partners(hub: Hub) -> list:
    with reading(hub.engine) as conn:
        return conn.execute(select(partners).order_by(partners.c.id)).all()


def _valid_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.fragment or not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise invalid(
            "a redirect URI must be an absolute https URL (http only on loopback) without a fragment",
            [FieldError("redirect_uris", f"{uri!r} is not allowed")],
        )
    return uri


# --- tokens and principals -------------------------------------------------------------------


def create_admin_token(hub: Hub, label: str | None = None) -> Created:
    token = security.new_key("sha_")
    with transaction(hub.engine) as conn:
        number = conn.execute(
            api_tokens.insert().values(token_hash=security.key_hash(hub.secret, token), kind="admin", label=label)
        ).inserted_primary_key[0]
    return Created(ids.encode("token", number), token)


def _principal(row) -> Principal:
    """Who a live token stands for (a partner's, before any X-Store-Id)."""
    if row.kind == "api":
        return Principal("organization", ALL_SCOPES, organization=row.organization_id, token_id=row.id)
    if row.kind == "admin":
        return Principal("admin", frozenset(), token_id=row.id)
    return Principal(
        "partner", frozenset(scope_list(row.scope)), organization=row.organization_id, partner=row.partner_id, token_id=row.id,
        grantor=row.organization_id,
    )


def _live_token(hub: Hub, token_hash: str, cached_only: bool = False):
    """The token's row if it is live, from a short-lived cache: a request on a hot token costs no
    database round trip. A revocation made by this process takes effect at once (`forget_tokens`);
    one made by another process within `AUTH_CACHE_SECONDS`. `cached_only`: None unless cached."""
    now = time.monotonic()
    cached = hub.token_cache.get(token_hash)
    if cached is not None and cached[0] > now:
        row = cached[1]
    elif cached_only:
        return None
    else:
        with reading(hub.engine) as conn:
            row = conn.execute(
                select(api_tokens).where(
                    api_tokens.c.token_hash == token_hash,
                    api_tokens.c.revoked_at.is_(None),
                    api_tokens.c.kind.in_(("api", "admin", "access")),
                )
            ).first()
        if row is None:
            hub.token_cache.pop(token_hash, None)
            return None
        if len(hub.token_cache) >= _TOKEN_CACHE_SIZE:
            hub.token_cache.clear()
        hub.token_cache[token_hash] = (now + hub.settings.auth_cache_seconds, row)
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row


_TOKEN_CACHE_SIZE = 10_000


def forget_tokens(hub: Hub) -> None:
    """After revoking tokens: this process stops accepting them at once."""
    hub.token_cache.clear()


def cached_principal(hub: Hub, token: str, partner_store_id: str | None = None) -> Principal | None:
    """`principal_for_token` when it needs no database (the token cached and no partner store to
    resolve): for the API to answer without a thread hop. None: ask `principal_for_token`."""
    if partner_store_id is not None:
        return None
    row = _live_token(hub, security.bearer_hash(hub.secret, token), cached_only=True)
    return _principal(row) if row is not None else None


def principal_for_token(hub: Hub, token: str, partner_store_id: str | None = None) -> Principal | None:
    """The caller a bearer token stands for, or None if it is unknown, revoked or expired.

    For a partner, `partner_store_id` (the `X-Store-Id` header) is resolved to the connected
    store; a store the partner is not connected to (or, for a token a user granted, one outside
    that user's organization) is not found (404), whatever the route.
    """
    row = _live_token(hub, security.bearer_hash(hub.secret, token))
    if row is None:
        return None
    principal = _principal(row)
    if principal.kind != "partner" or partner_store_id is None:
        return principal
    scopes = principal.scopes
    query = select(store_connections.c.store_id, store_connections.c.organization_id).where(
        store_connections.c.partner_id == row.partner_id, store_connections.c.partner_store_id == partner_store_id
    )
    if row.organization_id is not None:
        query = query.where(store_connections.c.organization_id == row.organization_id)
    with reading(hub.engine) as conn:
        connection = conn.execute(query).first()
    if connection is None:
        raise not_found(f"a store connected as {partner_store_id!r}")
    return Principal(
        "partner",
        scopes,
        organization=connection.organization_id,
        partner=row.partner_id,
        store=connection.store_id,
        token_id=row.id,
        grantor=row.organization_id,
    )
