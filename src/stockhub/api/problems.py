"""Every error as RFC 9457 problem details; never a stack trace to a client."""

from __future__ import annotations

import logging
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stockhub.errors import FieldError, Problem

log = logging.getLogger(__name__)

_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed"}


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


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(_request: Request, problem: Problem):
        return problem_response(problem)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, error: RequestValidationError):
        errors = [
            FieldError(field=".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), message=e["msg"])
            for e in error.errors()
        ]
        return problem_response(Problem(422, "Invalid request", "the request has invalid fields", errors))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, error: StarletteHTTPException):
        return problem_response(Problem(error.status_code, _TITLES.get(error.status_code, "Error"), str(error.detail)))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(Problem(500, "Internal error", "something went wrong on our side; it has been logged"))
