"""OAuth 2 over HTTP, and the sign-in pages the consent step needs.

authlib ships integrations for Flask and Django only; this is the thin FastAPI adapter: the
request body is read asynchronously first, then handed to authlib's (synchronous) core as an
`OAuth2Request` (`create_oauth2_request`), and its `(status, body, headers)` answers become
Starlette responses (`handle_response`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InsecureTransportError, OAuth2Payload, OAuth2Request
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from stockhub.api import sessions
from stockhub.api.deps import get_hub
from stockhub.domain.access import ALL_SCOPES
from stockhub.errors import Problem
from stockhub.services import accounts, oauth
from stockhub.services.context import Hub

router = APIRouter(tags=["oauth"], include_in_schema=True)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

# Form fields of our own pages, not OAuth parameters.
_PAGE_FIELDS = ("csrf_token", "decision")


class _Payload(OAuth2Payload):
    def __init__(self, items: list[tuple[str, str]]):
        self._datalist: defaultdict[str, list] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self):
        return self._data

    @property
    def datalist(self):
        return self._datalist


class ReadRequest(OAuth2Request):
    """An HTTP request whose query and form were already read (authlib's core is synchronous)."""

    def __init__(self, request: Request, form: list[tuple[str, str]]):
        super().__init__(request.method, str(request.url), headers=request.headers)
        query = list(request.query_params.multi_items())
        self._args = dict(query)
        self._form = dict(form)
        self.payload = _Payload(query + [(k, v) for k, v in form if k not in _PAGE_FIELDS])

    @property
    def args(self):
        return self._args

    @property
    def form(self):
        return self._form


class FastAPIAuthorizationServer(oauth.StockhubAuthorizationServer):
    def create_oauth2_request(self, request):
        return request  # always a ReadRequest already

    def create_json_request(self, request):
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status, body, headers):
        content = json.dumps(body) if isinstance(body, dict) else body
        return Response(content, status_code=status, headers=dict(headers))


def authorization_server(request: Request) -> FastAPIAuthorizationServer:
    state = request.app.state
    if getattr(state, "authorization_server", None) is None:
        state.authorization_server = FastAPIAuthorizationServer(get_hub(request))
    return state.authorization_server


async def _read(request: Request) -> ReadRequest:
    form = list((await request.form()).multi_items()) if request.method == "POST" else []
    try:
        return ReadRequest(request, [(k, v) for k, v in form if isinstance(v, str)])
    except InsecureTransportError:
        raise Problem(400, "Bad request", "OAuth 2 is served over https only (plain http on loopback addresses)") from None


def _page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"  # no clickjacking of the consent buttons
    return response


def _refusal(request: Request, error: OAuth2Error) -> HTMLResponse:
    """An error that must not go back to the client: its redirect URI is not established."""
    message = f"{error.error}: {error.description}" if error.description else error.error
    return _page(request, "message.html", 400, title="This authorization request cannot be served", message=message)


# --- the authorization endpoint --------------------------------------------------------------


# Otter's partner clients use Otter's paths (`/v1/auth/oauth2/authorize`, `/v1/auth/token`): the
# same endpoints answer there too.
AUTHORIZE_PATHS = ("/oauth/authorize", "/v1/auth/oauth2/authorize")
TOKEN_PATHS = ("/oauth/token", "/v1/auth/token")


@router.get(AUTHORIZE_PATHS[1], response_class=HTMLResponse, include_in_schema=False)
@router.get(AUTHORIZE_PATHS[0], response_class=HTMLResponse)
async def authorize(request: Request) -> Response:
    """Validate the request, sign the user in if needed, then ask for consent."""
    hub, server = get_hub(request), authorization_server(request)
    oauth_request = await _read(request)
    session = sessions.with_csrf(sessions.read(hub, request))
    user = await run_in_threadpool(sessions.signed_in, hub, session)
    try:
        grant = await run_in_threadpool(server.get_consent_grant, oauth_request, user)
    except OAuth2Error as error:
        return server.handle_error_response(oauth_request, error) if error.redirect_uri else _refusal(request, error)
    if user is not None and user.organization is None:  # a partner's user: it has no stores to grant
        return _page(request, "message.html", 403, title="Sign in as the retailer", message="A partner's account cannot authorize applications: sign out and sign in with the retailer's account.")
    if user is None:
        target = f"{request.url.path}?{request.url.query}"
        return RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)
    details = await run_in_threadpool(oauth.consent_details, hub, user, grant.client, grant.request.scope)
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAGE_FIELDS]
    response = _page(request, "consent.html", action=request.url.path, csrf=session["csrf"], email=user.email, params=params, **details)
    sessions.write(hub, request, response, session)
    return response


@router.post(AUTHORIZE_PATHS[1], response_class=HTMLResponse, include_in_schema=False)
@router.post(AUTHORIZE_PATHS[0], response_class=HTMLResponse)
async def decide(request: Request) -> Response:
    """The consent form: allow issues a code to the redirect URI, deny answers access_denied."""
    hub, server = get_hub(request), authorization_server(request)
    oauth_request = await _read(request)
    session = sessions.read(hub, request)
    sessions.check_csrf(session, oauth_request.form.get("csrf_token"))
    user = await run_in_threadpool(sessions.signed_in, hub, session)
    if user is None:
        return _page(request, "message.html", 401, title="Signed out", message="sign in again, then retry from the application")
    try:
        grant = await run_in_threadpool(server.get_consent_grant, oauth_request, user)
    except OAuth2Error as error:
        return server.handle_error_response(oauth_request, error) if error.redirect_uri else _refusal(request, error)
    allowed = oauth_request.form.get("decision") == "allow"
    return await run_in_threadpool(server.create_authorization_response, oauth_request, user if allowed else None, grant)


# --- token, revocation, metadata -------------------------------------------------------------


@router.post(TOKEN_PATHS[1], include_in_schema=False)
@router.post(TOKEN_PATHS[0])
async def token(request: Request) -> Response:
    """authorization_code (with PKCE), refresh_token (rotating) and client_credentials."""
    server = authorization_server(request)
    return await run_in_threadpool(server.create_token_response, await _read(request))


@router.post("/oauth/revoke")
async def revoke(request: Request) -> Response:
    """RFC 7009: revoking a refresh token ends its whole grant; unknown tokens answer 200 too."""
    server = authorization_server(request)
    return await run_in_threadpool(server.create_endpoint_response, "revocation", await _read(request))


@router.get("/.well-known/oauth-authorization-server")
def metadata(request: Request) -> dict:
    """RFC 8414 authorization server metadata."""
    hub: Hub = get_hub(request)
    base = (hub.settings.public_url or str(request.base_url)).rstrip("/")
    methods = ["client_secret_basic", "client_secret_post", "none"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}{AUTHORIZE_PATHS[0]}",
        "token_endpoint": f"{base}{TOKEN_PATHS[0]}",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "scopes_supported": sorted(ALL_SCOPES),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "code_challenge_methods_supported": ["S256"],
        # the same endpoints at Otter's paths, for Otter's partner clients (an RFC 8414 extension)
        "otter_authorization_endpoint": f"{base}{AUTHORIZE_PATHS[1]}",
        "otter_token_endpoint": f"{base}{TOKEN_PATHS[1]}",
    }


# --- signing in and out ----------------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str | None = None) -> Response:
    hub = get_hub(request)
    session = sessions.with_csrf(sessions.read(hub, request))
    response = _page(request, "signin.html", csrf=session["csrf"], next=sessions.safe_next(next), email="", error=None)
    sessions.write(hub, request, response, session)
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    hub = get_hub(request)
    form = await request.form()
    session = sessions.read(hub, request)
    sessions.check_csrf(session, form.get("csrf_token"))
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    target = sessions.safe_next(form.get("next"))
    user = await run_in_threadpool(accounts.authenticate_user, hub, email, password)
    if user is None:
        return _page(request, "signin.html", 401, csrf=session["csrf"], next=target, email=email, error="Wrong email or password.")
    response = RedirectResponse(target, status_code=303)
    sessions.write(hub, request, response, sessions.with_csrf({"user": user.id}))  # a fresh session: no fixation
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    hub = get_hub(request)
    form = await request.form()
    sessions.check_csrf(sessions.read(hub, request), form.get("csrf_token"))
    response = RedirectResponse("/signin", status_code=303)
    sessions.write(hub, request, response, sessions.with_csrf({}))
    return response
