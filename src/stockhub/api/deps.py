"""What routes depend on: the hub, and the principal a bearer token stands for.

`Scoped("stock.read")` gives a route the caller if its token holds the scope; which stores it
then reaches is `services.scope.scope_of(principal)` (a partner: only the store its
`X-Store-Id` names). `Organization` is for routes that take an organization's own API token only.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stockhub.api import problems
from stockhub.domain.access import Principal
from stockhub.errors import FieldError, Problem, invalid
from stockhub.services.accounts import cached_principal, principal_for_token
from stockhub.services.context import Hub
from stockhub.services.paging import MAX_LIMIT
from stockhub.services.scope import organization_of


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


# The dependencies here do no I/O: `async def` keeps them on the event loop (FastAPI runs a plain
# `def` dependency in a worker thread, a hop that cost more than the dependency itself).
async def _hub(request: Request) -> Hub:
    return request.app.state.hub


async def clean_input(request: Request) -> None:
    """Every route's request is refused whole when a text value (path, query, JSON or form body)
    holds a NUL character or is not valid UTF-8 (no database stores those alike: PostgreSQL refuses
    them), or when a query parameter is given more than once (each takes one value)."""
    errors = [FieldError(name, _UNCLEAN) for name, value in request.path_params.items() if not _clean(value)]
    query = request.query_params.multi_items()
    errors += [FieldError(name, _UNCLEAN) for name, value in query if not _clean(value)]
    names = [name for name, _ in query]
    errors += [FieldError(name, "given more than once") for name in sorted({n for n in names if names.count(n) > 1})]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    reads_json = getattr(request.scope.get("route"), "body_field", None) is not None  # never a streamed file
    if reads_json and (content_type == "application/json" or content_type.endswith("+json")):
        body = await request.body()
        if b"\\u0000" in body or b"\\ud" in body.lower():  # escapes only: raw NUL or bad UTF-8 is not JSON at all
            try:
                errors += [FieldError(name, _UNCLEAN) for name in _unclean_fields(json.loads(body))]
            except ValueError:
                pass  # not JSON: the route's own validation says so
    elif content_type == "application/x-www-form-urlencoded" and request.method == "POST":  # the sign-in and OAuth forms
        errors += [FieldError(name, _UNCLEAN) for name, value in (await request.form()).multi_items() if isinstance(value, str) and not _clean(value)]
    if errors:
        raise invalid("some text holds a NUL character or is not valid UTF-8, or a parameter is repeated", errors)


_UNCLEAN = "must not contain NUL characters and must be valid UTF-8"


def _clean(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _unclean_fields(value, path: str = "") -> list[str]:
    if isinstance(value, str):
        return [] if _clean(value) else [path or "body"]
    if isinstance(value, dict):
        pairs = value.items()
    elif isinstance(value, list):
        pairs = enumerate(value)
    else:
        return []
    found = []
    for key, item in pairs:
        name = f"{path}.{key}" if path else str(key)
        found += [name] if isinstance(key, str) and not _clean(key) else _unclean_fields(item, name)
    return found


async def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None, x_store_id: str | None) -> Principal:
    if credentials is None:
        raise Problem(401, "Unauthorized", "send a token as 'Authorization: Bearer <token>'")
    hub = get_hub(request)
    principal = cached_principal(hub, credentials.credentials, x_store_id)  # the token cache: no thread hop
    if principal is None:
        principal = await run_in_threadpool(principal_for_token, hub, credentials.credentials, x_store_id)
    if principal is None:
        raise Problem(401, "Unauthorized", "the token is unknown, expired or revoked")
    return principal


_StoreHeader = Annotated[str | None, Header(description="a partner's own id of a connected store")]


class _Caller(HTTPBearer):
    """The principal the request's bearer token stands for, holding `scope` when one is named. One
    dependency that is also the security scheme (the OpenAPI still says `HTTPBearer` and
    `X-Store-Id`), not the scheme's and ours: FastAPI's cost is per dependency, on every request."""

    def __init__(self, scope: str | None = None):
        super().__init__(scheme_name="HTTPBearer", auto_error=False)
        self.scope = scope

    async def __call__(self, request: Request, x_store_id: _StoreHeader = None) -> Principal:  # type: ignore[override]
        principal = await _principal(request, await super().__call__(request), x_store_id)
        if self.scope is not None and not principal.has(self.scope):
            raise Problem(403, "Forbidden", f"the token lacks the scope {self.scope}", extra={"required_scope": self.scope})
        return principal


CurrentPrincipal = Annotated[Principal, Depends(_Caller())]


def Scoped(scope: str):  # noqa: N802 - reads as a type in signatures
    return Annotated[Principal, Depends(_Caller(scope))]


@functools.cache
def _api_threads(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(count, thread_name_prefix="stockhub-api")


async def in_thread(hub: Hub, use_case: Callable[..., Any], *args) -> Any:
    """`use_case(*args)` in a thread of the busiest routes' own pool (`API_THREADS` of them, beside
    anyio's for the other sync routes): a plain executor hop costs half the CPU of a sync route's
    (anyio's capacity limiter, cancel scope and checkpoints; bench/orders/hop.py). The request's
    context (its log fields) goes along; a cancelled request's use case still ends in its thread,
    committed or rolled back."""
    call = functools.partial(contextvars.copy_context().run, use_case, *args)
    return await asyncio.get_running_loop().run_in_executor(_api_threads(hub.settings.api_threads), call)


async def current_organization(principal: CurrentPrincipal, request: Request) -> int:
    """An organization's own API token; to anyone else a route naming a thing is 404 (no existence leak)."""
    return organization_of(principal, "this" if request.path_params else None)


HubDep = Annotated[Hub, Depends(_hub)]
Organization = Annotated[int, Depends(current_organization)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Token = Annotated[str | None, Query(max_length=200, description="the page token from the previous page's `next_token`")]
CONFLICT = problems.responses(409)


def also(status: int, description: str) -> dict:
    """Another success answer of a route, with a JSON object body (e.g. 200 beside 201)."""
    return {status: {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}}


def page_body(page, render: Callable[[Any], dict]) -> dict:
    """A page as the API answers it, each item rendered (stockhub.representations)."""
    return {"items": [render(item) for item in page.items], "next_token": page.next_token}
