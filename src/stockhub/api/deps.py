"""What routes depend on: the hub, and the principal a bearer token stands for.

`Scoped("stock.read")` gives a route the caller if its token holds the scope; which stores it
then reaches is `services.scope.scope_of(principal)` (a partner: only the store its
`X-Store-Id` names). `Organization` is for routes that take an organization's own API token only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stockhub.domain.access import Principal
from stockhub.errors import Problem
from stockhub.services.accounts import principal_for_token
from stockhub.services.context import Hub
from stockhub.services.paging import MAX_LIMIT
from stockhub.services.scope import organization_of

_bearer = HTTPBearer(auto_error=False)


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_store_id: Annotated[str | None, Header(description="a partner's own id of a connected store")] = None,
) -> Principal:
    if credentials is None:
        raise Problem(401, "Unauthorized", "send a token as 'Authorization: Bearer <token>'")
    principal = await run_in_threadpool(principal_for_token, get_hub(request), credentials.credentials, x_store_id)
    if principal is None:
        raise Problem(401, "Unauthorized", "the token is unknown, expired or revoked")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def Scoped(scope: str):  # noqa: N802 - reads as a type in signatures
    def holding(principal: CurrentPrincipal) -> Principal:
        if not principal.has(scope):
            raise Problem(403, "Forbidden", f"the token lacks the scope {scope}", extra={"required_scope": scope})
        return principal

    return Annotated[Principal, Depends(holding)]


def current_organization(principal: CurrentPrincipal, request: Request) -> int:
    """An organization's own API token; to anyone else a route naming a thing is 404 (no existence leak)."""
    return organization_of(principal, "this" if request.path_params else None)


HubDep = Annotated[Hub, Depends(get_hub)]
Organization = Annotated[int, Depends(current_organization)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Token = Annotated[str | None, Query(description="the page token from the previous page's `next_token`")]


def page_body(page) -> dict:
    return {"items": page.items, "next_token": page.next_token}
