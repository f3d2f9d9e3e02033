"""Every error as RFC 9457 problem details; never a stack trace to a client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from stockhub.errors import Conflict, FieldError, Invalid, Malformed, NotFound, Problem, Refused, ServiceError, TooLarge

log = logging.getLogger(__name__)

_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed"}

# The HTTP status of each kind of service error (errors.py): the API's one mapping.
STATUS: dict[type[ServiceError], int] = {
    Malformed: 400,
    Refused: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Invalid: 422,
}


def as_problem(error: ServiceError) -> Problem:
    status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
    return Problem(status, error.title, error.detail, error.errors, error.extra)


def problem_response(problem: Problem) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extra,
    }
    if problem.errors:
        body["errors"] = [{k: v for k, v in asdict(e).items() if v is not None} for e in problem.errors]
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(body, status_code=problem.status, media_type="application/problem+json", headers=headers)


# Paths that speak another error dialect (e.g. the Otter-style organization API): prefix → renderer.
DIALECTS: dict[str, Callable[[Problem], Response]] = {}


def _render(request: Request, problem: Problem) -> Response:
    for prefix, render in DIALECTS.items():
        if request.url.path.startswith(prefix):
            return render(problem)
    return problem_response(problem)


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
        return _render(request, Problem(error.status_code, _TITLES.get(error.status_code, "Error"), str(error.detail)))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _render(request, Problem(500, "Internal error", "something went wrong on our side; it has been logged"))
