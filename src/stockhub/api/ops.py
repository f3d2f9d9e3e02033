"""Operating the API: request ids, access logs, request metrics, rate limits, /metrics, /readyz.

`Observed` (the outermost middleware) gives every request an id — the caller's `X-Request-Id`
when it is a sane one (at most 128 of `A-Za-z0-9._:-`), else a new one — echoes it in the
answer's `X-Request-Id`, binds it to every log line of the request (logs.py) and puts it in
problem bodies (`request_id`, api/problems.py); it logs one line per request (method, route,
status, time) and counts it in the latency histogram by route *template*.

`RateLimited` counts each request against its token's and its address's limits
(services/rate_limits.py) before any route runs, and answers `429` (with `Retry-After`) past
either; every answer it counts carries `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (seconds) for the tightest of them. The probes (`/healthz`, `/readyz`,
`/metrics`) are never limited. If counting fails (the database dropped the connection), the
request is served uncounted rather than refused: the limiter never takes the API down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockhub import logs, metrics
from stockhub.api import problems
from stockhub.errors import LimitReached, Problem
from stockhub.services.rate_limits import Limiter

log = logging.getLogger("stockhub.http")

PROBES = ("/healthz", "/readyz", "/metrics")
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
READY_TIMEOUT_SECONDS = 5

router = APIRouter(tags=["health"])


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            given = value.decode("latin-1").strip()
            if _SANE_ID.fullmatch(given):
                return given
            break
    return secrets.token_hex(12)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or ("unmatched" if scope.get("type") == "http" else "-")


class Observed:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = request_id_from(scope["headers"])
        token = logs.bind(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]  # the app never sets it
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            took = time.perf_counter() - started
            route = _route_template(scope)
            metrics.HTTP_REQUESTS.labels(scope["method"], route, str(status)).observe(took)
            if scope["path"] not in PROBES:
                client = scope.get("client") or ("-", 0)
                log.info(
                    "%s %s %s %.1f ms", scope["method"], scope["path"], status, took * 1000,
                    extra={"fields": {"route": route, "status": status, "ms": round(took * 1000, 1), "client": client[0]}},
                )
            logs.unbind(token)


class RateLimited:
    def __init__(self, app: ASGIApp, limiter: Limiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            return await self.app(scope, receive, send)
        request = Request(scope)
        bearer = request.headers.get("authorization", "")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
        address = request.client.host if request.client else None
        try:
            verdict = self.limiter.check(token, address)  # in memory: no thread hop (services/rate_limits.py)
        except LimitReached as reached:
            metrics.RATE_LIMITED.labels(reached.extra.get("limit", "")).inc()
            rate = self.limiter.rates[reached.extra.get("limit")]
            response = problems.render(request, problems.as_problem(reached))
            response.headers.update(
                {"RateLimit-Limit": str(rate.limit), "RateLimit-Remaining": "0", "RateLimit-Reset": str(reached.retry_after)}
            )
            return await response(scope, receive, send)
        if verdict is None:
            return await self.app(scope, receive, send)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":  # the app never sets these
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"ratelimit-limit", b"%d" % verdict.limit), (b"ratelimit-remaining", b"%d" % verdict.remaining), (b"ratelimit-reset", b"%d" % verdict.reset),
                ]
            await send(message)

        await self.app(scope, receive, sending)


def install(app, hub) -> None:
    """The middleware (when there is a hub: the OpenAPI-only app has none). The probe routes are
    `router`'s, included with every other route (api/app.py)."""
    if hub is None:
        return
    limiter = Limiter(hub.settings, hub.engine)
    if limiter.active:
        app.add_middleware(RateLimited, limiter=limiter)
    app.add_middleware(Observed)  # added last: the outermost, so a 429 has its request id too


@router.get("/healthz")
def healthz() -> dict:
    """The process answers (a liveness probe): it checks nothing else."""
    return {"status": "ok"}


_READY = {
    "description": "every check passed",
    "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}, "checks": {"type": "object"}}}}},
}


@router.get("/readyz", responses={200: _READY, 503: {"description": "a check failed: `checks` says which and why", "content": _READY["content"]}})
async def readyz(request: Request) -> Response:
    """Ready to serve (a readiness probe): the database answers a trivial query and the file storage answers."""
    hub = request.app.state.hub
    checks = {}
    for name, check in (("database", _database_answers), ("storage", _storage_answers)):
        try:
            await asyncio.wait_for(run_in_threadpool(check, hub), READY_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = f"no answer within {READY_TIMEOUT_SECONDS} s"
        except Exception as error:  # what is wrong, in a line: the probe's reader is a person or a balancer
            checks[name] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


def _database_answers(hub) -> None:
    from sqlalchemy import text

    with hub.engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()
        conn.rollback()


def _storage_answers(hub) -> None:
    hub.storage.stat("readyz-probe")  # a lookup: reaches the folder or the bucket, changes nothing


@router.get(
    "/metrics",
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **problems.responses(401),
    },
    response_class=Response,
    summary="Prometheus metrics",
)
async def metrics_route(request: Request) -> Response:
    """Prometheus metrics: queue depths and lags read from the database, this process's counters.
    Open unless `STOCKHUB_METRICS_TOKEN` is set; then it wants that token as a bearer token."""
    hub = request.app.state.hub
    wanted = hub.settings.metrics_token
    if wanted:
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {wanted}".encode()):
            raise Problem(401, "Unauthorized", "send the metrics token as 'Authorization: Bearer <STOCKHUB_METRICS_TOKEN>'")
    body, content_type = await run_in_threadpool(metrics.exposition, hub.engine)
    return Response(body, media_type=content_type)
