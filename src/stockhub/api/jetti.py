"""Jetti's inventory-feed API, unchanged for its existing clients (a dialect: only the host and
the token change). The same use cases as `/v1/feeds` (services/feeds.py), in Jetti's names:

- `POST /api/dropship-providers.json` `{name, storeId?}`;
- `POST /api/inventory-feeds.json`: `type`/`resourceType` `webhook` is a push feed; `ftpCsv`,
  `ftpXml`, `rest` (JSON), `xlsx` pull `resourceLocation`. Jetti's settings map to stockhub's:
  `automaticallyConnect` (default true: by SKU), `automaticallyConnectByBarcode`,
  `caseInsensitiveSkus`, `fetchFrequency` (`hourly`, `daily`, `never`, or minutes),
  `fetchCleanup` (items missing from a fetch go out of stock at once). Jetti's feeds name no
  store: `storeId` (here or on the provider), else the organization's only store;
- `PUT /api/inventory-feeds/{id}/parse-webhook.json`: one item `{externalId, vendorSku,
  inventoryQuantity, price?, barcode?}` upserted synchronously, or an array of up to 50
  accepted (202) and applied by the workers: poll `GET /api/inventory-feed-batches/{id}.json`;
- `GET /api/inventory-feed-variants.json` (`inventoryFeedId`, `limit`, `token`; the next page's
  URL in `Link`) and `PUT /api/inventory-feed-variants/{id}.json`.

Unknown fields are ignored, as a client written for Jetti sends more than stockhub reads.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from stockhub import representations as show
from stockhub.api import problems
from stockhub.api.deps import HubDep, Limit, Scoped, Token
from stockhub.errors import FieldError, invalid
from stockhub.services import feeds
from stockhub.services.fields import Amount, Bool, Quantity
from stockhub.services.scope import scope_of

router = APIRouter(prefix="/api", tags=["jetti"])
LIMITED = problems.responses(409, 429)
OBJECT = {"application/json": {"schema": {"type": "object"}}}


def _text(value: Any) -> Any:
    """Jetti clients send ids as numbers or strings."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


JettiText = Annotated[str, BeforeValidator(_text)]


class Provider(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    storeId: str | None = Field(None, max_length=64)  # noqa: N815 - Jetti's names


RESOURCE_TYPES = {"webhook": ("push", None), "ftpCsv": ("pull", "csv"), "csv": ("pull", "csv"), "ftpXml": ("pull", "xml"),
                  "xml": ("pull", "xml"), "rest": ("pull", "json"), "restApi": ("pull", "json"), "json": ("pull", "json"),
                  "xlsx": ("pull", "xlsx"), "ftpXlsx": ("pull", "xlsx")}
FREQUENCIES = {"hourly": 60, "daily": 1440}


class InventoryFeed(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    name: str = Field("Inventory feed", min_length=1, max_length=200)
    type: str | None = Field(None, max_length=20, description="webhook (push), ftpCsv, ftpXml, rest (JSON) or xlsx (pull)")
    resourceType: str | None = Field(None, max_length=20)  # noqa: N815
    resourceLocation: str | None = Field(None, max_length=2000)  # noqa: N815
    authenticationToken: str | None = Field(None, max_length=200)  # noqa: N815
    authenticationSecret: str | None = Field(None, max_length=200)  # noqa: N815
    dropshipProviderId: JettiText | None = Field(None, max_length=64)  # noqa: N815
    storeId: str | None = Field(None, max_length=64)  # noqa: N815
    automaticallyConnect: Bool = True  # noqa: N815
    automaticallyConnectByBarcode: Bool = False  # noqa: N815
    caseInsensitiveSkus: Bool = False  # noqa: N815
    fetchFrequency: JettiText | None = Field(None, max_length=20, description="hourly (default), daily, never, or minutes")  # noqa: N815
    fetchCleanup: Bool = False  # noqa: N815
    automatedFetching: Bool = True  # noqa: N815
    delta: Bool = False
    mapping: feeds.Mapping | None = None


class Variant(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    externalId: JettiText = Field(min_length=1, max_length=255)  # noqa: N815
    vendorSku: JettiText | None = Field(None, max_length=255)  # noqa: N815
    inventoryQuantity: Quantity  # noqa: N815
    price: Amount | None = Field(None, gt=0)
    barcode: JettiText | None = Field(None, max_length=64)
    currency: str | None = Field(None, min_length=3, max_length=3)

    def item(self) -> feeds.Item:
        return feeds.Item(self.externalId, self.inventoryQuantity, self.vendorSku or None, self.barcode or None, self.price, self.currency)


class VariantChanges(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    vendorSku: JettiText | None = Field(None, max_length=255)  # noqa: N815
    inventoryQuantity: Quantity | None = None  # noqa: N815
    price: Amount | None = Field(None, gt=0)
    barcode: JettiText | None = Field(None, max_length=64)
    currency: str | None = Field(None, min_length=3, max_length=3)


@router.post("/dropship-providers.json", status_code=201)
def create_provider(hub: HubDep, principal: Scoped("stock.write"), body: Provider) -> dict:
    created = feeds.create_provider(hub, scope_of(principal), body.name, body.storeId)
    return {"id": created["id"], "name": created["name"], "storeId": created["store_id"], "createdAt": created["created_at"]}


@router.post("/inventory-feeds.json", status_code=201)
def create_feed(hub: HubDep, principal: Scoped("stock.write"), body: InventoryFeed) -> dict:
    scope = scope_of(principal)
    given = body.resourceType or body.type or "webhook"
    if given not in RESOURCE_TYPES:
        raise invalid("unknown inventory feed type", [FieldError("resourceType", f"one of {', '.join(RESOURCE_TYPES)}")])
    kind, fmt = RESOURCE_TYPES[given]
    frequency, enabled = _frequency(body.fetchFrequency, kind)
    auto = "off" if not body.automaticallyConnect else "by_barcode" if body.automaticallyConnectByBarcode else "by_sku"
    fields = {
        "name": body.name,
        "kind": kind,
        "auto_connect": auto,
        "sku_match": "case_insensitive" if body.caseInsensitiveSkus else "exact",
        "missing_items": "out_of_stock" if body.fetchCleanup else "expire",
        "enabled": enabled and body.automatedFetching if kind == "pull" else True,
    }
    if kind == "pull":
        fields |= {
            "source_url": body.resourceLocation,
            "username": body.authenticationToken,
            "password": body.authenticationSecret,
            "format": fmt,
            "mapping": body.mapping,
            "fetch_frequency": frequency,
            "delta": body.delta,
        }
    store_id, provider = feeds.store_for_new_feed(hub, scope, body.storeId, body.dropshipProviderId)
    return render_feed(show.feed(feeds.create_feed(hub, scope, store_id, feeds.FeedIn(**fields), provider)), given)


def _frequency(given: str | None, kind: str) -> tuple[int, bool]:
    if kind == "push" or given in (None, "", "webhook", "custom"):
        return 60, True
    if given == "never":
        return 60, False
    if given in FREQUENCIES:
        return FREQUENCIES[given], True
    if given.isdigit() and 1 <= int(given) <= 10080:
        return int(given), True
    raise invalid("unknown fetch frequency", [FieldError("fetchFrequency", "hourly, daily, never, or whole minutes (1–10080)")])


@router.get("/inventory-feeds/{feed_id}.json")
def get_feed(hub: HubDep, principal: Scoped("stock.read"), feed_id: str) -> dict:
    return render_feed(show.feed(feeds.get_feed(hub, scope_of(principal, f"inventory feed {feed_id}"), feed_id)))


@router.put(
    "/inventory-feeds/{feed_id}/parse-webhook.json",
    responses=LIMITED | {202: {"description": "a batch received: poll it (Location)", "content": OBJECT}},
)
def parse_webhook(
    hub: HubDep,
    principal: Scoped("stock.write"),
    feed_id: str,
    body: Annotated[Variant | list[Variant], Body(description=f"one item (applied now), or up to {feeds.BATCH_MAX_ITEMS} (applied by the workers)")],
) -> JSONResponse:
    """Upsert one item by `externalId` (answered with the item), or accept a batch (202)."""
    scope = scope_of(principal, f"inventory feed {feed_id}")
    if isinstance(body, list):
        batch = show.feed_batch(feeds.accept_batch(hub, scope, feed_id, [variant.item() for variant in body]))
        url = f"/api/inventory-feed-batches/{batch['id']}.json"
        return JSONResponse(render_batch(batch), status_code=202, headers={"Location": url})
    return JSONResponse(render_variant(show.feed_item(feeds.upsert_item(hub, scope, feed_id, body.item()))))


@router.get("/inventory-feed-batches/{batch_id}.json")
def get_batch(hub: HubDep, principal: Scoped("stock.read"), batch_id: str) -> dict:
    return render_batch(show.feed_batch(feeds.get_batch(hub, scope_of(principal, f"batch {batch_id}"), batch_id)))


@router.get(
    "/inventory-feed-variants.json",
    responses={200: {"description": "a page of items; `Link` names the next page", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}}},
)
def list_variants(
    hub: HubDep,
    request: Request,
    principal: Scoped("stock.read"),
    inventoryFeedId: Annotated[str | None, Query(max_length=64)] = None,  # noqa: N803
    limit: Limit = 50,
    token: Token = None,
) -> JSONResponse:
    page = feeds.list_items(hub, scope_of(principal), inventoryFeedId, limit, token)
    headers = {}
    if page.next_token:
        headers["Link"] = f'<{request.url.include_query_params(token=page.next_token)}>; rel="next"'
    return JSONResponse([render_variant(show.feed_item(row)) for row in page.items], headers=headers)


@router.put("/inventory-feed-variants/{variant_id}.json", responses=LIMITED)
def update_variant(hub: HubDep, principal: Scoped("stock.write"), variant_id: str, body: VariantChanges) -> dict:
    names = {"vendorSku": "vendor_sku", "inventoryQuantity": "quantity", "price": "price", "barcode": "barcode", "currency": "currency"}
    changes = {names[name]: getattr(body, name) for name in body.model_fields_set if name in names}
    if changes.get("quantity", 0) is None:
        raise invalid("inventoryQuantity cannot be null", [FieldError("inventoryQuantity", "a whole number")])
    return render_variant(show.feed_item(feeds.update_item(hub, scope_of(principal, f"inventory feed variant {variant_id}"), variant_id, changes)))


def render_feed(feed: dict, given_type: str | None = None) -> dict:
    kind_names = {"csv": "ftpCsv", "xml": "ftpXml", "json": "rest", "xlsx": "xlsx"}
    resource = "webhook" if feed["kind"] == "push" else given_type or kind_names[feed["format"]]
    fetch = feed["fetch"] or {}
    return {
        "id": feed["id"],
        "name": feed["name"],
        "type": resource,
        "resourceType": resource,
        "resourceLocation": feed["source_url"],
        "dropshipProviderId": feed["provider_id"],
        "storeId": feed["store_id"],
        "automaticallyConnect": feed["auto_connect"] != "off",
        "automaticallyConnectByBarcode": feed["auto_connect"] == "by_barcode",
        "caseInsensitiveSkus": feed["sku_match"] == "case_insensitive",
        "fetchFrequency": "webhook" if feed["kind"] == "push" else feed["fetch_frequency"],
        "fetchCleanup": feed["missing_items"] == "out_of_stock",
        "automatedFetching": feed["enabled"],
        "delta": feed["delta"],
        "lastFetchedAt": fetch.get("last_at"),
        "lastFetchError": fetch.get("last_error"),
        "createdAt": feed["created_at"],
        "updatedAt": feed["updated_at"],
    }


def render_variant(item: dict) -> dict:
    return {
        "id": item["id"],
        "inventoryFeedId": item["feed_id"],
        "externalId": item["external_id"],
        "vendorSku": item["vendor_sku"],
        "barcode": item["barcode"],
        "inventoryQuantity": item["quantity"],
        "price": float(item["price"]) if item["price"] is not None else None,
        "currency": item["currency"],
        "connected": item["product"] is not None,
        "productIdentifier": item["product"],
        "status": item["status"],
        "reason": item["reason"],
        "createdAt": item["created_at"],
        "updatedAt": item["updated_at"],
    }


def render_batch(batch: dict) -> dict:
    items = batch["items"]
    return {
        "id": batch["id"],
        "inventoryFeedId": batch["feed_id"],
        "status": batch["status"],
        "receivedAt": batch["received_at"],
        "finishedAt": batch["finished_at"],
        "counts": batch["counts"],
        "items": [
            {"externalId": i["external_id"], "id": i["id"], "status": i["status"], "reason": i["reason"]} for i in items
        ] if items is not None else None,
        "error": batch["error"],
    }
