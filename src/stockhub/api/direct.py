"""The busiest routes' arguments, resolved by a plan made once instead of FastAPI's per request.

FastAPI re-solves a route's dependency graph on every request (each dependency's kind, cache key
and parameters, an exit stack, telemetry): for a booking, about a third of the CPU its request
spent outside the use case (docs/benchmarks.md, issue 13). A route marked `@direct` keeps its declaration
(the OpenAPI, the endpoint function, what it calls) and FastAPI keeps everything around it
(routing, middleware, exception handlers); only the step from request to the endpoint's
arguments is ours, in FastAPI's order and with FastAPI's own validation:

1. the JSON body is read (invalid JSON: 422 `json_invalid`, as FastAPI answers it);
2. the app's, the routers' and the route's dependencies, in FastAPI's order; those known here:
   `clean_input`, the hub, the caller (`Scoped`: 401/403 raised from there);
3. path parameters (`str`: the path's text as it is) and the body, validated by FastAPI's own
   field; its errors in one 422.

A route whose signature holds anything else (a query or header parameter, another dependency)
is refused (TypeError) when the route is declared; a dependency the app or a router adds that is
not known here, when the app first routes to it. Nothing is silently skipped.
tests/api/test_direct.py sends the same requests, good and bad, to a direct route and to the same
endpoint under FastAPI, and wants the same answers.
"""

from __future__ import annotations

import email.message
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import fastapi.routing
import orjson
from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic_core import PydanticUndefined

from stockhub.api import deps

_MARK = "__stockhub_direct__"


def direct(endpoint: Callable) -> Callable:
    """Mark a route's `async def` endpoint to be called through a planned handler (module doc)."""
    setattr(endpoint, _MARK, True)
    return endpoint


class Route(APIRoute):
    """Routes of a router made with `route_class=Route`: a `@direct` endpoint gets the planned
    handler, every other one FastAPI's."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        if not getattr(self.endpoint, _MARK, False):
            return super().get_route_handler()
        return _planned(self)


def _planned(route: APIRoute) -> Callable[[Request], Awaitable[Response]]:
    route = _as_included(route)
    dependant = route.dependant
    steps = [_step(sub) for sub in dependant.dependencies]
    params = {"query": dependant.query_params, "header": dependant.header_params, "cookie": dependant.cookie_params}
    if unsupported := [kind for kind, found in params.items() if found]:
        raise TypeError(f"{route.path}: a direct route takes no {' or '.join(unsupported)} parameters")
    if not inspect.iscoroutinefunction(route.endpoint) or dependant.request_param_name or dependant.response_param_name:
        raise TypeError(f"{route.path}: a direct route's endpoint is an `async def` taking neither the request nor a response")
    strict = getattr(route, "strict_content_type", True)
    if getattr(strict, "value", strict) is not True:
        raise TypeError(f"{route.path}: a direct route reads a body without a content type as FastAPI's default does (strict)")
    if any(field.field_info.annotation is not str for field in dependant.path_params):
        raise TypeError(f"{route.path}: a direct route's path parameters are `str` (the path's text needs no validation)")
    path_names = [(field.name, field.alias) for field in dependant.path_params]
    body_fields = dependant.body_params
    embed = route._embed_body_fields
    endpoint, status_code = route.endpoint, route.status_code or 200

    async def handler(request: Request) -> Response:
        body = await _json_body(request) if body_fields else None
        values: dict[str, Any] = {}
        for name, resolve in steps:
            value = await resolve(request)
            if name is not None:
                values[name] = value
        path = request.path_params
        values |= {name: path[alias] for name, alias in path_names}
        if body_fields:
            found, errors = await request_body_to_args(body_fields, body, embed)
            if errors:
                raise RequestValidationError(errors, body=body)
            values |= found
        answer = await endpoint(**values)
        return answer if isinstance(answer, Response) else Answer(answer, status_code)

    return handler


class Answer(JSONResponse):
    """A JSON answer rendered by orjson: a twentieth of the json module's CPU for an order."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _as_included(route: APIRoute) -> Any:
    """FastAPI (0.16x) builds an included route once per inclusion, while that inclusion is the
    context: its dependant then also holds the app's and the routers' dependencies."""
    var = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = var.get() if var is not None else None
    return context if context is not None and context.original_route is route else route


def _step(sub: Dependant) -> tuple[str | None, Callable[[Request], Awaitable[Any]]]:
    if sub.call is deps.clean_input:
        return None, deps.clean_input
    if sub.call is deps._hub:
        return sub.name, deps._hub
    if isinstance(sub.call, deps._Caller):
        caller = sub.call
        return sub.name, lambda request: caller(request, request.headers.get("x-store-id"))
    raise TypeError(f"a direct route cannot resolve the dependency {sub.call!r}")


async def _json_body(request: Request) -> Any:
    """The body as FastAPI reads it for a JSON body parameter: parsed when the content type says
    JSON, the raw bytes otherwise (validation then refuses them)."""
    try:
        raw = await request.body()
    except Exception as error:  # the client went away mid-body: answered as FastAPI answers it
        raise HTTPException(400, "There was an error parsing the body") from error
    if not raw:
        return PydanticUndefined  # no body: "Field required" (None would be a body that is null)
    content_type = request.headers.get("content-type")
    if not content_type:
        return raw
    if content_type != "application/json":  # as FastAPI parses it (the common case needs no parser)
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            return raw
    try:
        return json.loads(raw)  # not orjson: it reads an integer past 64 bits as a float, where FastAPI's json gives the integer
    except json.JSONDecodeError as error:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error", "input": {}, "ctx": {"error": error.msg}}],
            body=error.doc,
        ) from error
    except ValueError as error:  # not UTF-8, -16 or -32 text at all
        raise HTTPException(400, "There was an error parsing the body") from error
