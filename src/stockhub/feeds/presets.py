"""Export presets: the item/product exports of common POS and shop systems, recognised from their
header row without any configuration, as data (one table per vendor), never code branches.

Every column name below is taken from the vendor's public documentation of its export (or
import/export, which is the same file) format; each table cites the page it was read from.
Header names are matched case- and space-insensitively (`headers.normalise`).

Per preset:
- `recognise`: headers that must all be present for the file to be that vendor's export;
- identifiers: barcode columns first, then SKU columns; per row the first non-empty one wins;
- `quantity` / `price`: one fixed header, or a header per location (`…_per_location`, a regular
  expression on the header whose `location` group is the location's name), picked by the
  store's `location_name`;
- `skip`: rows that are not items (Shopify's image-only rows, a variable product's parent row):
  skipped, not rejected, and counted in the upload's `counts.skipped`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stockhub.feeds.headers import normalise


@dataclass(frozen=True)
class Skip:
    """Rows that are not items. `blank`: every one of `columns` is empty. `any_of`: the cell of
    `columns[0]`, split at commas, holds one of `values` (case-insensitive)."""

    kind: str  # "blank" | "any_of"
    columns: tuple[str, ...]
    values: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Preset:
    name: str  # recorded on the upload (`preset`)
    title: str
    doc_url: str
    recognise: tuple[str, ...]
    barcode: tuple[str, ...] = ()
    sku: tuple[str, ...] = ()
    quantity: tuple[str, ...] = ()  # fixed headers (the first present is used)
    quantity_per_location: str | None = None  # regex with a `location` group
    price: tuple[str, ...] = ()
    price_per_location: str | None = None
    promotion_amount: tuple[str, ...] = ()
    currency: tuple[str, ...] = ()
    title_column: tuple[str, ...] = ()  # the product's name (shown in rejections' context only)
    skip: tuple[Skip, ...] = field(default_factory=tuple)


# Shopify product CSV (variant rows; a product's extra images are rows with only Handle and
# Image Src/Image Position; Body (HTML) holds quoted newlines). Column list and meaning:
# https://help.shopify.com/en/manual/products/import-export/using-csv
# (header row as exported: https://gist.github.com/anonymous/ba4c34b71cced52cc5cd). "Variant
# Inventory Qty" is used only by stores with a single location (same page).
SHOPIFY = Preset(
    name="shopify",
    title="Shopify product export",
    doc_url="https://help.shopify.com/en/manual/products/import-export/using-csv",
    recognise=("Handle", "Variant Inventory Qty", "Variant Price"),
    barcode=("Variant Barcode",),
    sku=("Variant SKU",),
    quantity=("Variant Inventory Qty",),
    price=("Variant Price",),
    title_column=("Title",),
    skip=(
        Skip(
            "blank",
            ("Variant SKU", "Variant Barcode", "Variant Price", "Variant Inventory Qty"),
            why="an image row (no variant: only the product's handle and an image)",
        ),
    ),
)

# Square item library export (XLSX or CSV; one row per item variation; stock per location in
# "Current Quantity <Location Name>"): https://squareup.com/help/gb/en/article/5966-item-library-and-unit-cost-management
# GTIN column: https://squareup.com/help/us/en/article/7176-using-gtins-with-square-for-retail
# To verify against a real export: the pages' stored excerpts confirm the per-location "Current
# Quantity" columns and the GTIN field, not every header's exact spelling (Token, Item Name,
# Variation Name, SKU, Price).
SQUARE = Preset(
    name="square",
    title="Square item library export",
    doc_url="https://squareup.com/help/gb/en/article/5966-item-library-and-unit-cost-management",
    recognise=("Token", "Item Name", "Variation Name"),
    barcode=("GTIN",),
    sku=("SKU",),
    quantity_per_location=r"^current quantity (?P<location>.+)$",
    price=("Price",),
    title_column=("Item Name",),
)

# Lightspeed Retail (R-Series) item export/import file: System ID, UPC, EAN, Custom SKU,
# Manufacturer SKU, Description, Price, and per shop "[Shop name] - Quantity on Hand":
# https://retail-support.lightspeedhq.com/hc/en-us/articles/115005142408-Formatting-item-import-files
# (the same table mirrored at https://support.cloudscape.ae/portal/en/kb/articles/adding-new-and-editing-existing-products-in-the-csv-file)
LIGHTSPEED_R = Preset(
    name="lightspeed_r",
    title="Lightspeed Retail (R-Series) item export",
    doc_url="https://retail-support.lightspeedhq.com/hc/en-us/articles/115005142408-Formatting-item-import-files",
    recognise=("System ID", "Custom SKU"),
    barcode=("EAN", "UPC"),
    sku=("Custom SKU", "Manufacturer SKU", "System ID"),
    quantity_per_location=r"^(?P<location>.+?)\s*-\s*quantity on hand$",
    price=("Price",),
    title_column=("Description",),
)

# Lightspeed Retail (X-Series, formerly Vend) product export: id, handle, sku, name,
# retail_price, and per outlet inventory_<Outlet_Name>:
# https://support.vendhq.com/hc/en-us/articles/4650130313487-Formatting-Retail-POS-R-Series-product-data-for-import-into-Retail-POS-X-Series-
# https://support.vendhq.com/hc/en-us/articles/360001952315-Setting-up-your-product-catalog
# The first page confirms the snake_case headers (id, sku); handle, retail_price and inventory_<outlet>
# are the export's documented fields as the X-Series template writes them: to verify against a real export.
# A row with no inventory count at all (a product whose stock is not tracked, e.g. the parent
# of variants) is not an item.
VEND = Preset(
    name="lightspeed_x",
    title="Lightspeed Retail (X-Series / Vend) product export",
    doc_url="https://support.vendhq.com/hc/en-us/articles/4650130313487",
    recognise=("handle", "sku", "retail_price"),
    sku=("sku",),
    quantity_per_location=r"^inventory_(?P<location>.+)$",
    price=("retail_price",),
    title_column=("name",),
    skip=(Skip("blank", ("@quantity",), why="no inventory count (stock not tracked, e.g. a variant's parent)"),),
)

# WooCommerce product CSV (built-in exporter, 3.1+): Type, SKU, Name, Regular price, Sale
# price, Stock, Parent; a variable product's own row (Type "variable") is the parent of its
# "variation" rows: https://github.com/woocommerce/woocommerce/wiki/Product-CSV-Import-Schema
WOOCOMMERCE = Preset(
    name="woocommerce",
    title="WooCommerce product export",
    doc_url="https://github.com/woocommerce/woocommerce/wiki/Product-CSV-Import-Schema",
    recognise=("Type", "SKU", "Name", "Regular price"),
    sku=("SKU",),
    quantity=("Stock",),
    price=("Regular price",),
    promotion_amount=("Sale price",),
    title_column=("Name",),
    skip=(
        Skip(
            "any_of",
            ("Type",),
            ("variable", "grouped", "external"),
            why="not an item itself (a variable product's parent, a group, or an external product)",
        ),
    ),
)

# Loyverse item export (Back Office → Items → Export): Handle, SKU, Name, Barcode, and per store
# "Price [Store]" and "In stock [Store]": https://help.loyverse.com/help/importing-and-exporting
# The page describes the export, its per-store price and stock and the Price/Cost columns; the
# exact header spellings are to verify against a real export.
LOYVERSE = Preset(
    name="loyverse",
    title="Loyverse item export",
    doc_url="https://help.loyverse.com/help/importing-and-exporting",
    recognise=("Handle", "SKU", "Name", "Barcode"),
    barcode=("Barcode",),
    sku=("SKU",),
    quantity_per_location=r"^in stock \[(?P<location>.+)\]$",
    price_per_location=r"^price \[(?P<location>.+)\]$",
    title_column=("Name",),
)

PRESETS: tuple[Preset, ...] = (SHOPIFY, SQUARE, LIGHTSPEED_R, VEND, WOOCOMMERCE, LOYVERSE)
BY_NAME = {preset.name: preset for preset in PRESETS}
QUANTITY = "@quantity"  # in a Skip: the quantity column the preset picked


@dataclass(frozen=True)
class Match:
    """A preset applied to a header row: which table column holds which field."""

    preset: Preset
    columns: dict[str, tuple[str, ...]]  # field → table columns (stock_file's field names)
    skip: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...]  # (kind, table columns, values, why)
    invalid_reason: str | None = None


def recognise(header: dict[str, str | None], location_name: str | None) -> Match | None:
    """The first preset whose recognising headers are all in `header` ({table column: text}), with
    its columns picked; None when no preset fits (the file is read with NearSt's aliases)."""
    by_name: dict[str, str] = {}
    for column, text in header.items():
        if text:
            by_name.setdefault(normalise(text), column)
    for preset in PRESETS:
        if all(normalise(name) in by_name for name in preset.recognise):
            return _apply(preset, header, by_name, location_name)
    return None


def _apply(preset: Preset, header: dict[str, str | None], by_name: dict[str, str], location_name: str | None) -> Match:
    def present(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(by_name[normalise(n)] for n in names if normalise(n) in by_name)

    problems: list[str] = []
    columns: dict[str, tuple[str, ...]] = {}
    if barcode := present(preset.barcode):
        columns["barcode"] = barcode
    if sku := present(preset.sku):
        columns["sku"] = sku
    for field_name, fixed, per_location in (
        ("quantity", preset.quantity, preset.quantity_per_location),
        ("price", preset.price, preset.price_per_location),
    ):
        chosen = None
        if per_location:
            chosen, problem = _per_location(header, per_location, location_name, field_name)
            if problem and not present(fixed) and not any("location" in p for p in problems):
                problems.append(problem)
        if chosen is None and (found := present(fixed)):
            chosen = found[0]
        if chosen is not None:
            columns[field_name] = (chosen,)
        elif not problems:
            problems.append(f"the {preset.title} has no {field_name} column ({', '.join(fixed) or per_location})")
    for field_name, names in (("promotion_amount", preset.promotion_amount), ("currency", preset.currency)):
        if found := present(names):
            columns[field_name] = found[:1]
    if "barcode" not in columns and "sku" not in columns:
        problems.append(f"the {preset.title} has no identifier column ({', '.join(preset.barcode + preset.sku)})")
    skip = []
    for rule in preset.skip:
        cols = tuple(
            c for name in rule.columns for c in (columns.get("quantity", ()) if name == QUANTITY else present((name,)))
        )
        if cols:
            skip.append((rule.kind, cols, tuple(v.lower() for v in rule.values), rule.why))
    return Match(preset, columns, tuple(skip), "; ".join(problems) or None)


def _per_location(header: dict[str, str | None], pattern: str, location_name: str | None, field_name: str) -> tuple[str | None, str | None]:
    """(the column for the store's location, or None; why not, or None)."""
    regex = re.compile(pattern, re.IGNORECASE)
    found = [(column, text, m.group("location")) for column, text in header.items() if text and (m := regex.match(text.strip()))]
    if not found:
        return None, None
    names = ", ".join(f'"{text}"' for _, text, _ in found)
    if location_name:
        wanted = _location_key(location_name)
        for column, _, location in found:
            if _location_key(location) == wanted:
                return column, None
        return None, (
            f"the file has {field_name} columns for locations {names}, none of them the store's location_name "
            f'"{location_name}": set location_name to one of them'
        )
    if len(found) == 1:
        return found[0][0], None
    return None, (
        f"the file has {field_name} columns for several locations ({names}): set the store's location_name "
        "(PATCH /v1/stores/{store_id}) to the one this store is"
    )


def _location_key(name: str) -> str:
    """Location names compare by letters and digits only, any case: "Main Outlet" is Vend's
    "inventory_Main_Outlet"."""
    return re.sub(r"[\W_]+", "", name).lower()
