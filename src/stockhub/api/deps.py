"""What routes depend on: the hub, and the organization a bearer token speaks for."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stockhub.errors import Problem
from stockhub.services.context import Hub
from stockhub.services.tenancy import organization_for_token

_bearer = HTTPBearer(auto_error=False)


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


def current_organization(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> int:
    if credentials is None:
        raise Problem(401, "Unauthorized", "send an API token as 'Authorization: Bearer <token>'")
    organization = organization_for_token(get_hub(request), credentials.credentials)
    if organization is None:
        raise Problem(401, "Unauthorized", "the API token is unknown or revoked")
    return organization


HubDep = Annotated[Hub, Depends(get_hub)]
Organization = Annotated[int, Depends(current_organization)]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
Token = Annotated[str | None, Query(description="the page token from the previous page's `next_token`")]


def page_body(page) -> dict:
    return {"items": page.items, "next_token": page.next_token}
