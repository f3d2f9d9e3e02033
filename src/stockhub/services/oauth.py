"""The OAuth 2 authorization server: authlib's core (RFC 6749 grants, RFC 7636 PKCE, RFC 7009
revocation) over our tables. Framework-free: `api/oauth.py` adapts it to FastAPI.

Tokens are opaque random strings stored as HMACs (like upload keys). Every token belongs to a
`family`: the grant it came from (one authorization code, or one client_credentials call).
Refresh tokens rotate; presenting a spent refresh token, or replaying a spent code, revokes
the whole family (RFC 9700 §4.14, RFC 6749 §4.1.2).
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from sqlalchemy import select

from stockhub import ids, security
from stockhub.db.engine import reading, transaction
from stockhub.db.tables import api_tokens, oauth_codes, organizations, partners, stores, utcnow
from stockhub.domain.access import ALL_SCOPES, SCOPES, scope_list
from stockhub.services import accounts
from stockhub.services.context import Hub

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


# --- models authlib asks about ---------------------------------------------------------------


class PartnerClient(ClientMixin):
    def __init__(self, row, secret: bytes):
        self.id = row.id
        self.name = row.name
        self.public = row.client_secret_hash is None
        self.redirect_uris = json.loads(row.redirect_uris)
        self.scopes = scope_list(row.scopes)
        self._secret_hash = row.client_secret_hash
        self._server_secret = secret

    def get_client_id(self):
        return ids.encode("partner", self.id)

    def get_default_redirect_uri(self):
        return None  # the redirect_uri is always required, and matched exactly

    def get_allowed_scope(self, scope):
        """All of the requested scopes, or None (invalid_scope) if any is not allowed to this client."""
        if not scope:
            return " ".join(self.scopes)
        requested = scope_list(scope)
        return " ".join(requested) if set(requested) <= set(self.scopes) else None

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        if self._secret_hash is None:
            return False
        return hmac.compare_digest(security.key_hash(self._server_secret, client_secret), self._secret_hash)

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "none" if self.public else method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        if grant_type == "client_credentials":
            return not self.public
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code:
    id: int
    partner_id: int
    user_id: int
    organization_id: int
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    family: str

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


class IssuedToken(TokenMixin):
    def __init__(self, row):
        self.row = row

    def check_client(self, client):
        return self.row.partner_id == client.id

    def get_scope(self):
        return self.row.scope

    def get_expires_in(self):
        return int((self.row.expires_at - self.row.created_at).total_seconds())

    def is_expired(self):
        return self.row.expires_at <= utcnow()

    def is_revoked(self):
        return self.row.revoked_at is not None


# --- grants ----------------------------------------------------------------------------------


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code, request):
        hub: Hub = self.server.hub
        payload = request.payload.data
        with transaction(hub.engine) as conn:
            conn.execute(
                oauth_codes.insert().values(
                    code_hash=security.key_hash(hub.secret, code),
                    partner_id=request.client.id,
                    user_id=request.user.id,
                    organization_id=request.user.organization,
                    redirect_uri=request.payload.redirect_uri,
                    scope=request.scope,
                    code_challenge=payload.get("code_challenge"),
                    code_challenge_method=payload.get("code_challenge_method"),
                    family=secrets.token_hex(16),
                    expires_at=utcnow() + timedelta(seconds=hub.settings.oauth_code_seconds),
                )
            )

    def query_authorization_code(self, code, client):
        hub: Hub = self.server.hub
        with reading(hub.engine) as conn:
            row = conn.execute(
                select(oauth_codes).where(
                    oauth_codes.c.code_hash == security.key_hash(hub.secret, code), oauth_codes.c.partner_id == client.id
                )
            ).first()
        if row is None:
            return None
        if row.used_at is not None:  # a replayed code: whatever it was exchanged for is revoked
            revoke_family(hub, row.family)
            return None
        if row.expires_at <= utcnow():
            return None
        return Code(**{name: getattr(row, name) for name in Code.__dataclass_fields__})

    def delete_authorization_code(self, authorization_code):
        hub: Hub = self.server.hub
        with transaction(hub.engine) as conn:
            spent = conn.execute(
                oauth_codes.update()
                .where(oauth_codes.c.id == authorization_code.id, oauth_codes.c.used_at.is_(None))
                .values(used_at=utcnow())
            ).rowcount
        if not spent:  # exchanged twice at once: neither exchange keeps its tokens
            revoke_family(hub, authorization_code.family)

    def authenticate_user(self, authorization_code):
        return accounts.get_user(self.server.hub, authorization_code.user_id)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token):
        hub: Hub = self.server.hub
        row = _token_row(hub, refresh_token, ("refresh",))
        if row is None:
            return None
        if row.revoked_at is not None:  # reuse of a spent (or revoked) refresh token
            revoke_family(hub, row.family)
            return None
        if row.expires_at <= utcnow():
            return None
        return IssuedToken(row)

    def authenticate_user(self, refresh_token):
        return accounts.get_user(self.server.hub, refresh_token.row.user_id)

    def revoke_old_credential(self, refresh_token):
        hub: Hub = self.server.hub
        with transaction(hub.engine) as conn:
            spent = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == refresh_token.row.id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
        if not spent:  # the same refresh token used twice at once
            revoke_family(hub, refresh_token.row.family)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only; required of public clients already at the authorization request."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is refused)")
        if grant.request.client.public and not data.get("code_challenge"):
            raise InvalidRequestError("a public client must send a PKCE code_challenge (S256)")
        super().validate_code_challenge(grant, redirect_uri)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        row = _token_row(self.server.hub, token_string, ("access", "refresh"))
        return IssuedToken(row) if row else None

    def revoke_token(self, token, request):
        """Revoking a refresh token ends its grant (RFC 7009 §2.1); an access token ends alone."""
        if token.row.kind == "refresh":
            revoke_family(self.server.hub, token.row.family)
        else:
            with transaction(self.server.hub.engine) as conn:
                conn.execute(api_tokens.update().where(api_tokens.c.id == token.row.id).values(revoked_at=utcnow()))
            accounts.forget_tokens(self.server.hub)


# --- the server ------------------------------------------------------------------------------


class StockhubAuthorizationServer(AuthorizationServer):
    """authlib's server with our storage; a face adds create_oauth2_request and handle_response."""

    def __init__(self, hub: Hub):
        super().__init__(scopes_supported=sorted(ALL_SCOPES))
        self.hub = hub
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **_: security.new_key("sho_"),
                lambda **_: security.new_key("shr_"),
                lambda client, grant_type: hub.settings.oauth_access_token_seconds,
            ),
        )
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(Revocation)

    def query_client(self, client_id):
        number = ids.decode("partner", client_id or "")
        if number is None:
            return None
        with reading(self.hub.engine) as conn:
            row = conn.execute(select(partners).where(partners.c.id == number)).first()
        return PartnerClient(row, self.hub.secret) if row else None

    def save_token(self, token, request):
        grant_type = request.payload.grant_type
        if grant_type == "authorization_code":
            family, organization = request.authorization_code.family, request.authorization_code.organization_id
        elif grant_type == "refresh_token":
            family, organization = request.refresh_token.row.family, request.refresh_token.row.organization_id
        else:
            family, organization = secrets.token_hex(16), None
        now = utcnow()
        common = {
            "organization_id": organization,
            "partner_id": request.client.id,
            "user_id": request.user.id if request.user else None,
            "scope": token.get("scope", ""),
            "family": family,
            "created_at": now,
        }
        settings = self.hub.settings
        with transaction(self.hub.engine) as conn:
            conn.execute(
                api_tokens.insert().values(
                    kind="access",
                    token_hash=security.key_hash(self.hub.secret, token["access_token"]),
                    expires_at=now + timedelta(seconds=settings.oauth_access_token_seconds),
                    **common,
                )
            )
            if "refresh_token" in token:
                conn.execute(
                    api_tokens.insert().values(
                        kind="refresh",
                        token_hash=security.key_hash(self.hub.secret, token["refresh_token"]),
                        expires_at=now + timedelta(days=settings.oauth_refresh_token_days),
                        **common,
                    )
                )

    def send_signal(self, name, *args, **kwargs):
        pass  # authlib's hook for framework signals; nothing listens here


def revoke_family(hub: Hub, family: str) -> None:
    with transaction(hub.engine) as conn:
        conn.execute(
            api_tokens.update().where(api_tokens.c.family == family, api_tokens.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
    accounts.forget_tokens(hub)


def _token_row(hub: Hub, token: str, kinds: tuple[str, ...]):
    with reading(hub.engine) as conn:
        return conn.execute(
            select(api_tokens).where(api_tokens.c.token_hash == security.key_hash(hub.secret, token), api_tokens.c.kind.in_(kinds))
        ).first()


# --- what the consent page shows -------------------------------------------------------------


def consent_details(hub: Hub, user: accounts.User, client: PartnerClient, scope: str) -> dict:
    with reading(hub.engine) as conn:
        organization = conn.execute(select(organizations.c.name).where(organizations.c.id == user.organization)).scalar()
        store_names = conn.execute(
            select(stores.c.name).where(stores.c.organization_id == user.organization).order_by(stores.c.id)
        ).scalars().all()
    return {
        "application": client.name,
        "organization": organization,
        "scopes": [(s, SCOPES.get(s, s)) for s in scope_list(scope)],
        "stores": list(store_names),
    }
