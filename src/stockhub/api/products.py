"""The organization's product catalog (custom product data from products.csv)."""

from __future__ import annotations

from fastapi import APIRouter

from stockhub.api.deps import HubDep, Organization
from stockhub import representations as show
from stockhub.services import catalog

router = APIRouter(prefix="/v1", tags=["products"])


@router.get("/products/{identifier}")
def get_product(hub: HubDep, organization: Organization, identifier: str) -> dict:
    """A product's data (title, brand, image, ...); any spelling of its barcode finds it."""
    return show.product(catalog.get_product(hub, organization, identifier))
