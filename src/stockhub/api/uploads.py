from __future__ import annotations

import time
from typing import Annotated, Literal

import anyio

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from stockhub import representations as show
from stockhub.api import problems
from stockhub.api.deps import HubDep, Limit, Scoped, Token, page_body
from stockhub.domain.access import Principal
from stockhub.errors import FieldError, Problem
from stockhub.services import uploads
from stockhub.services.scope import scope_of

router = APIRouter(tags=["uploads"])
UPLOAD_PATH = "/incoming/"  # the PUT's time is bounded by its URL's expiry, not the server's body timeout
URL_SAFE = r"^[A-Za-z0-9_=-]+$"  # what the signed URL's nonce and signature are made of
UploadKind = Literal["stock", "products"]


@router.get("/upload/{upload_key}", response_class=PlainTextResponse)
def upload_url(hub: HubDep, request: Request, upload_key: str, type: Annotated[str, Query(description="stock or products")] = "stock") -> str:
    """Step 1 of the two-step upload (NearSt-compatible): the body is the URL to PUT the file to."""
    return uploads.upload_url(hub, upload_key, type, str(request.base_url))


@router.put(UPLOAD_PATH + "{store_id}/{kind}", responses=problems.responses(408, 409, 413))
async def put_file(
    hub: HubDep,
    request: Request,
    store_id: str,
    kind: UploadKind,
    expires: Annotated[int, Query(ge=0, le=2**63 - 1)],
    nonce: Annotated[str, Query(max_length=64, pattern=URL_SAFE)],
    signature: Annotated[str, Query(max_length=100, pattern=URL_SAFE)],
    key_id: Annotated[str, Query(max_length=64, pattern=URL_SAFE)] = "",  # which upload key the URL was issued under
) -> dict:
    """Step 2: PUT the stock file (CSV or XLSX) as the body. Answered once the file is durable."""
    grant = await run_in_threadpool(uploads.check_upload_url, hub, store_id, kind, expires, nonce, key_id, signature)
    _refuse_declared_oversize(hub, request)
    # the URL's expiry also bounds the transfer: a file still arriving after it (and a grace) is cut off
    try:
        with anyio.fail_after(expires + hub.settings.upload_url_grace_seconds - time.time()):
            received = await uploads.receive_stream(hub, grant, request.stream())
    except TimeoutError:
        raise Problem(408, "Request timeout", "the file did not arrive before the upload URL expired: ask for a new URL and send it again") from None
    return await run_in_threadpool(uploads.record_upload, hub, grant, received, "http")


def _refuse_declared_oversize(hub, request: Request) -> None:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Problem(400, "Bad request", "Content-Length is not a number", [FieldError("Content-Length", "malformed")])
        if int(declared) > hub.settings.upload_max_bytes:
            raise uploads.too_large(hub)


@router.get("/v1/uploads/{upload_id}")
def get_upload(hub: HubDep, principal: Scoped("uploads.read"), upload_id: str) -> dict:
    """An upload's progress and result: status, counts, warnings and the first rejected rows."""
    return _upload_of(hub, principal, upload_id)


@router.get("/v1/uploads/{upload_id}/rejections.csv", response_class=Response)
def rejections_csv(hub: HubDep, principal: Scoped("uploads.read"), upload_id: str) -> Response:
    body = uploads.rejections_csv(hub, scope_of(principal, f"upload {upload_id}"), upload_id)
    return Response(body, media_type="text/csv; charset=utf-8")


@router.get("/v1/stores/{store_id}/uploads")
def list_uploads(hub: HubDep, principal: Scoped("uploads.read"), store_id: str, limit: Limit = 50, token: Token = None) -> dict:
    return page_body(uploads.list_uploads(hub, scope_of(principal, f"store {store_id}"), store_id, limit, token), show.upload)


def _upload_of(hub, principal: Principal, upload_id: str) -> dict:
    """The upload if the caller may see it: its organization's, or for a partner its connected store's."""
    return show.upload(*uploads.get_upload(hub, scope_of(principal, f"upload {upload_id}"), upload_id))
