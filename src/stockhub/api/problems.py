"""Every error as RFC 9457 problem details; never a stack trace to a client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from stockhub import logs
from stockhub.errors import Conflict, FieldError, Invalid, LimitReached, Malformed, NotFound, Problem, Refused, ServiceError, TooLarge

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    503: "Service unavailable",
}
BUSY_RETRY_AFTER_SECONDS = 1

# The RFC 9457 body every error of the API has (JSON Schema, for the OpenAPI description).
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "row": {"type": "integer"}},
            },
        },
    },
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}},
        "RateLimit-Limit": {"description": "requests allowed in the window", "schema": {"type": "integer"}},
        "RateLimit-Remaining": {"description": "requests left in the window", "schema": {"type": "integer"}},
        "RateLimit-Reset": {"description": "seconds until the window ends", "schema": {"type": "integer"}},
    },
    503: {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}},
}


def responses(*statuses: int, schema: str = "Problem", media_type: str = "application/problem+json") -> dict:
    """`responses=` for a router or route: each status answered with a problem body."""
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
        for status in statuses
    }


# What any route may answer: a malformed request (body, page token), a missing or unfit token,
# something not found, invalid fields, a rate limit reached (api/ops.py), a busy database.
COMMON = (400, 401, 403, 404, 422, 429, 503)

# The HTTP status of each kind of service error (errors.py): the API's one mapping.
STATUS: dict[type[ServiceError], int] = {
    Malformed: 400,
    Refused: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Invalid: 422,
    LimitReached: 429,
}


def as_problem(error: ServiceError) -> Problem:
    status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
    extra = error.extra | ({"retry_after": error.retry_after} if isinstance(error, LimitReached) else {})
    return Problem(status, error.title, error.detail, error.errors, extra)


def problem_response(problem: Problem) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extra,
    }
    if (request_id := logs.current("request_id")) is not None:
        body["request_id"] = request_id  # the X-Request-Id of the answer: quote it when asking what went wrong
    if problem.errors:
        body["errors"] = [{k: v for k, v in asdict(e).items() if v is not None} for e in problem.errors]
    return JSONResponse(body, status_code=problem.status, media_type="application/problem+json", headers=problem_headers(problem))


def problem_headers(problem: Problem) -> dict | None:
    if problem.status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if problem.status == 503:
        return {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)}
    if problem.status == 429:
        return {"Retry-After": str(problem.extra.get("retry_after", BUSY_RETRY_AFTER_SECONDS))}
    return None


_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _allowed(request: Request) -> list[str]:
    """The methods of the operations at this path, for a 405's `Allow` (RFC 9110): the described
    path that names it most literally. Read from the OpenAPI description's paths: FastAPI includes
    routers lazily, so `app.routes` no longer lists them."""
    table = getattr(request.app.state, "allowed_methods", None)
    if table is None:
        table = [
            (compile_path(path)[0], path.count("{"), {method.upper() for method in operations if method in _METHODS})
            for path, operations in request.app.openapi()["paths"].items()
        ]
        request.app.state.allowed_methods = table
    matched = [(params, named) for pattern, params, named in table if pattern.match(request.url.path)]
    fewest = min((params for params, _ in matched), default=0)  # `…/stock/adjustments`, not `…/stock/{identifier}`
    methods: set[str] = set()
    for params, named in matched:
        if params == fewest:
            methods |= named
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _busy(error: OperationalError) -> bool:
    """SQLite's one writer is taken for longer than the busy timeout."""
    return "database is locked" in str(error.orig) or "database is busy" in str(error.orig)


def _disconnected(error: DBAPIError) -> bool:
    """The database dropped the connection (restarted, a backend terminated) or cannot be
    reached: SQLAlchemy has discarded the pool's connections and the next request reconnects."""
    return error.connection_invalidated or (isinstance(error, OperationalError) and not _busy(error) and _unreachable(error))


def _unreachable(error: OperationalError) -> bool:
    text = str(error.orig).lower()
    return any(words in text for words in ("connection refused", "server closed the connection", "terminating connection",
                                             "the database system is starting up", "the database system is shutting down",
                                             "consuming input failed", "connection failed", "the connection is closed"))


# Paths that speak another error dialect (e.g. the Otter-style organization API): prefix → renderer.
DIALECTS: dict[str, Callable[[Problem], Response]] = {}


def _render(request: Request, problem: Problem) -> Response:
    for prefix, render in DIALECTS.items():
        if request.url.path.startswith(prefix):
            response = render(problem)
            for name, value in (problem_headers(problem) or {}).items():
                response.headers.setdefault(name, value)
            return response
    return problem_response(problem)


render = _render  # for faces outside the exception handlers (api/ops.py's 429)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, problem: Problem):
        return _render(request, problem)

    @app.exception_handler(ServiceError)
    async def on_service_error(request: Request, error: ServiceError):
        return _render(request, as_problem(error))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError):
        errors = [
            FieldError(field=".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), message=e["msg"])
            for e in error.errors()
        ]
        return _render(request, Problem(422, "Invalid request", "the request has invalid fields", errors))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException):
        response = _render(request, Problem(error.status_code, _TITLES.get(error.status_code, "Error"), str(error.detail)))
        response.headers.update(error.headers or {})
        if error.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed(request))
        return response

    @app.exception_handler(DBAPIError)
    async def on_database_error(request: Request, error: DBAPIError):
        if isinstance(error, OperationalError) and _busy(error):
            log.warning("database busy on %s %s", request.method, request.url.path)
            return _render(request, Problem(503, "Service unavailable", "the database is busy: retry in a moment"))
        if _disconnected(error):
            log.warning("database connection lost on %s %s: %s", request.method, request.url.path, str(error.orig).strip()[:200])
            return _render(request, Problem(503, "Service unavailable", "the database connection was lost: retry in a moment"))
        return await on_crash(request, error)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _render(request, Problem(500, "Internal error", "something went wrong on our side; it has been logged"))


def describe(app: FastAPI, schemas: dict[str, dict]) -> None:
    """The OpenAPI description with the error bodies `responses()` refers to."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            document.setdefault("components", {}).setdefault("schemas", {}).update({"Problem": PROBLEM_SCHEMA} | schemas)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi
