"""The corpus: realistic export files of each preset's vendor, made here from the vendors'
documented formats (the column lists cited in stockhub/feeds/presets.py), never real customer
data, each with the stock it must give. Add a vendor or a quirk by adding a `CorpusFile`.

`write_corpus(folder)` writes every file into a folder (the tests write it to a temporary one;
`python tests/feeds/corpus/corpus_files.py OUT` writes it for a look).
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import xlsxwriter


def gtin(body: str) -> str:
    """`body` with its GS1 check digit."""
    total = sum(int(d) * (3 if k % 2 == 0 else 1) for k, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


BOOK = "9780141383743"  # EAN-13 (ISBN-13), canonical 09780141383743
UPC = "036000291452"  # UPC-A, canonical 00036000291452
EAN8 = "96385074"  # GTIN-8, canonical 00000096385074
MUG_EAN = gtin("501234567890")  # an EAN-13
CAP_EAN = gtin("400638133393")


def canonical(code: str) -> str:
    return code.rjust(14, "0")


@dataclass(frozen=True)
class CorpusFile:
    name: str  # file name, e.g. shopify_products_export.csv
    body: bytes
    preset: str | None  # the preset the upload must say it recognised ("mapping" for a mapped store)
    stock: dict[str, tuple[int, int]]  # identifier → (on_hand, price in minor units)
    skipped: int = 0
    location_name: str | None = None  # the store's setting the file needs
    column_mapping: dict | None = None
    warnings_contain: tuple[str, ...] = field(default_factory=tuple)


def _csv(rows: list[list], *, delimiter: str = ",", encoding: str = "utf-8", newline: str = "\r\n") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def _xlsx(rows: list[list]) -> bytes:
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer) as book:
        sheet = book.add_worksheet("Items")
        for i, row in enumerate(rows):
            for j, cell in enumerate(row):
                if cell is None:
                    continue
                if isinstance(cell, str):
                    sheet.write_string(i, j, cell)  # as Square's template: text cells stay text
                else:
                    sheet.write_number(i, j, cell)
    return buffer.getvalue()


# --- Shopify: the product CSV's header row as exported (variant rows, image-only rows, HTML) ---
SHOPIFY_HEADER = [
    "Handle", "Title", "Body (HTML)", "Vendor", "Type", "Tags", "Published", "Option1 Name", "Option1 Value",
    "Option2 Name", "Option2 Value", "Option3 Name", "Option3 Value", "Variant SKU", "Variant Grams",
    "Variant Inventory Tracker", "Variant Inventory Qty", "Variant Inventory Policy", "Variant Fulfillment Service",
    "Variant Price", "Variant Compare At Price", "Variant Requires Shipping", "Variant Taxable", "Variant Barcode",
    "Image Src", "Image Position", "Image Alt Text", "Gift Card", "SEO Title", "SEO Description",
    "Google Shopping / Google Product Category", "Google Shopping / Gender", "Google Shopping / Age Group",
    "Google Shopping / MPN", "Google Shopping / Condition", "Variant Image", "Variant Weight Unit",
    "Variant Tax Code", "Cost per item", "Status",
]  # fmt: skip


def _shopify_row(**cells) -> list:
    names = {h.lower().replace(" ", "_").replace("(", "").replace(")", "").replace("/", ""): h for h in SHOPIFY_HEADER}
    row = dict.fromkeys(SHOPIFY_HEADER, "")
    for key, value in cells.items():
        row[names[key]] = value
    return [row[h] for h in SHOPIFY_HEADER]


def shopify() -> CorpusFile:
    body = '<p>Soft organic cotton, "relaxed" fit.</p>\n<ul>\n  <li>Machine wash, 30°C</li>\n  <li>Made in Portugal</li>\n</ul>'
    rows = [SHOPIFY_HEADER]
    rows.append(_shopify_row(handle="organic-tee", title="Organic Tee", body_html=body, vendor="Acme", type="Shirts",
        tags="cotton, organic", published="TRUE", option1_name="Size", option1_value="S", variant_sku="TEE-S",
        variant_inventory_tracker="shopify", variant_inventory_qty="4", variant_inventory_policy="deny",
        variant_fulfillment_service="manual", variant_price="18.00", variant_requires_shipping="TRUE",
        variant_taxable="TRUE", image_src="https://cdn.example/tee-front.jpg", image_position="1", status="active"))
    for size, qty in (("M", "0"), ("L", "7")):
        rows.append(_shopify_row(handle="organic-tee", option1_value=size, variant_sku=f"TEE-{size}",
            variant_inventory_tracker="shopify", variant_inventory_qty=qty, variant_inventory_policy="deny",
            variant_fulfillment_service="manual", variant_price="18.00", variant_requires_shipping="TRUE", variant_taxable="TRUE"))
    # image-only rows: a product's further images
    rows.append(_shopify_row(handle="organic-tee", image_src="https://cdn.example/tee-back.jpg", image_position="2"))
    rows.append(_shopify_row(handle="organic-tee", image_src="https://cdn.example/tee-side.jpg", image_position="3"))
    rows.append(_shopify_row(handle="matilda", title="Matilda", body_html="<p>Roald Dahl's classic,\nillustrated by Quentin Blake.</p>",
        vendor="Puffin", type="Books", published="TRUE", option1_name="Title", option1_value="Default Title",
        variant_sku="", variant_inventory_tracker="shopify", variant_inventory_qty="3", variant_price="7.99",
        variant_barcode=BOOK, image_src="https://cdn.example/matilda.jpg", image_position="1", status="active"))
    return CorpusFile(
        "products_export_1.csv",
        _csv(rows, newline="\n"),
        "shopify",
        {"TEE-S": (4, 1800), "TEE-M": (0, 1800), "TEE-L": (7, 1800), canonical(BOOK): (3, 799)},
        skipped=2,
    )


# --- Square: item library export, XLSX, stock per location -------------------------------
SQUARE_HEADER = [
    "Token", "Item Name", "Variation Name", "SKU", "Description", "Category", "Price",
    "Current Quantity Islington", "New Quantity Islington", "Current Quantity Manchester", "New Quantity Manchester", "GTIN",
]  # fmt: skip


def square() -> CorpusFile:
    rows = [
        SQUARE_HEADER,
        ["3VQ4ZQXH2XJXW6ZQ", "Enamel Mug", "Blue", "MUG.BLUE_01", "A mug", "Kitchen", 9.949999, 5, None, 2, None, MUG_EAN],
        ["UQ3N5S2ZP6V7LHDG", "Enamel Mug", "Red", "MUG.RED_01", "A mug", "Kitchen", 9.95, 0, None, 6, None, None],
        # a GTIN typed into a number cell: the UPC lost its leading zero
        ["7GZ5BRKQ2CYTQ3XW", "Cola", "Regular", "", "", "Drinks", 1.2, 24, None, 12, None, int(UPC)],
    ]
    return CorpusFile(
        "square_item_library.xlsx",
        _xlsx(rows),
        "square",
        {canonical(MUG_EAN): (5, 995), "MUG.RED_01": (0, 995), canonical(UPC): (24, 120)},
        location_name="Islington",
        warnings_contain=("were rounded",),
    )


def square_two_locations_unset() -> bytes:
    return square().body


# --- Lightspeed Retail (R-Series): item export, one shop ----------------------------------
LIGHTSPEED_HEADER = [
    "System ID", "UPC", "EAN", "Custom SKU", "Manufacturer SKU", "Description", "Vendor", "Brand", "Price", "MSRP",
    "Default Cost", "Category", "Islington - Quantity on Hand",
]  # fmt: skip


def lightspeed_r() -> CorpusFile:
    rows = [
        LIGHTSPEED_HEADER,
        ["210000000001", UPC, "", "", "", "Cola 330ml", "Acme Drinks", "Cola", "1.20", "1.50", "0.40", "Drinks", "30"],
        ["210000000002", "", MUG_EAN, "MUG-BLUE", "", "Enamel mug, blue", "Acme", "Acme", "9.95", "", "3.10", "Kitchen", "2"],
        ["210000000003", "", "", "A/1", "M-77", "Tote bag", "Acme", "Acme", "12.00", "", "4.00", "Bags", "1"],
    ]
    return CorpusFile(
        "lightspeed_item_export.csv",
        _csv(rows),
        "lightspeed_r",
        {canonical(UPC): (30, 120), canonical(MUG_EAN): (2, 995), "A/1": (1, 1200)},
    )


# --- Lightspeed X-Series (Vend): product export, stock per outlet -------------------------
VEND_HEADER = [
    "id", "handle", "sku", "composite_handle", "composite_sku", "composite_quantity", "name", "description", "type",
    "variant_option_one_name", "variant_option_one_value", "variant_option_two_name", "variant_option_two_value",
    "tags", "supply_price", "retail_price", "brand_name", "supplier_name", "supplier_code", "active",
    "track_inventory", "inventory_Main_Outlet", "reorder_point_Main_Outlet", "restock_level_Main_Outlet",
    "inventory_Second_Street", "reorder_point_Second_Street", "restock_level_Second_Street",
]  # fmt: skip


def _vend_row(**cells) -> list:
    row = dict.fromkeys(VEND_HEADER, "")
    row.update(cells)
    return [row[h] for h in VEND_HEADER]


def vend() -> CorpusFile:
    rows = [
        VEND_HEADER,
        _vend_row(id="0242ac12-0002-11e9", handle="capbasic", sku=CAP_EAN, name="Basic cap", supply_price="4.00",
                  retail_price="15.00", active="1", track_inventory="1", inventory_Main_Outlet="6", inventory_Second_Street="1"),
        _vend_row(id="0242ac12-0003-11e9", handle="teeplain", sku="tee-l", name="Plain tee / L",
                  variant_option_one_name="Size", variant_option_one_value="L", supply_price="5.00",
                  retail_price="20.00", active="1", track_inventory="1", inventory_Main_Outlet="3", inventory_Second_Street="0"),
        # a gift voucher: stock not tracked, no inventory count
        _vend_row(id="0242ac12-0004-11e9", handle="voucher", sku="VOUCHER10", name="Gift voucher", supply_price="0",
                  retail_price="10.00", active="1", track_inventory="0"),
    ]
    return CorpusFile(
        "vend_product_export.csv",
        _csv(rows),
        "lightspeed_x",
        {canonical(CAP_EAN): (6, 1500), "tee-l": (3, 2000)},
        skipped=1,
        location_name="Main Outlet",
    )


# --- WooCommerce: the built-in exporter's columns ------------------------------------------
WOO_HEADER = [
    "ID", "Type", "SKU", "Name", "Published", "Is featured?", "Visibility in catalog", "Short description",
    "Description", "Tax status", "In stock?", "Stock", "Backorders allowed?", "Sale price", "Regular price",
    "Categories", "Tags", "Images", "Parent", "Attribute 1 name", "Attribute 1 value(s)",
]  # fmt: skip


def _woo_row(**cells) -> list:
    row = dict.fromkeys(WOO_HEADER, "")
    row.update({k.replace("_", " ") if k not in WOO_HEADER else k: v for k, v in cells.items()})
    return [row[h] for h in WOO_HEADER]


def woocommerce() -> CorpusFile:
    rows = [
        WOO_HEADER,
        _woo_row(ID="10", Type="variable", SKU="HOODIE", Name="Hoodie", Published="1", Description="<p>Warm,\nsoft.</p>",
                 **{"In stock?": "1", "Regular price": "", "Attribute 1 name": "Size", "Attribute 1 value(s)": "S, M"}),
        _woo_row(ID="11", Type="variation", SKU="ab-12", Name="Hoodie - S", Published="1", Stock="2", Parent="id:10",
                 **{"In stock?": "1", "Regular price": "35", "Sale price": "29.5", "Attribute 1 name": "Size", "Attribute 1 value(s)": "S"}),
        _woo_row(ID="12", Type="variation", SKU="ab-13", Name="Hoodie - M", Published="1", Stock="0", Parent="id:10",
                 **{"In stock?": "0", "Regular price": "35"}),
        _woo_row(ID="13", Type="simple", SKU=BOOK, Name="Matilda", Published="1", Stock="5", **{"In stock?": "1", "Regular price": "7.99"}),
        _woo_row(ID="14", Type="simple, virtual", SKU="EBOOK-1", Name="Matilda (ebook)", Published="1", Stock="100",
                 **{"In stock?": "1", "Regular price": "4.99"}),
    ]
    return CorpusFile(
        "wc-product-export-30-11-2026.csv",
        _csv(rows),
        "woocommerce",
        {"ab-12": (2, 3500), "ab-13": (0, 3500), canonical(BOOK): (5, 799), "EBOOK-1": (100, 499)},
        skipped=1,
        warnings_contain=("NearSt's rule",),
    )


# --- Loyverse: item export, per store columns ---------------------------------------------
LOYVERSE_HEADER = [
    "Handle", "SKU", "Name", "Category", "Sold by weight", "Option 1 name", "Option 1 value", "Cost", "Barcode",
    "Track stock", "Available for sale [Islington]", "Price [Islington]", "In stock [Islington]", "Low stock [Islington]",
]  # fmt: skip


def loyverse() -> CorpusFile:
    rows = [
        LOYVERSE_HEADER,
        ["flat-white", "10001", "Flat white beans 250g", "Coffee", "N", "", "", "3.20", EAN8, "Y", "Y", "8.50", "12", "2"],
        ["espresso-cup", "10002", "Espresso cup", "Cups", "N", "", "", "1.10", "", "Y", "Y", "4.00", "9", ""],
    ]
    return CorpusFile(
        "export_items.csv",
        _csv(rows),
        "loyverse",
        {canonical(EAN8): (12, 850), "10002": (9, 400)},
    )


# --- A mapped store's odd file: cp1252, semicolons, decimal comma, header on row 3 ---------
ODD_MAPPING = {
    "barcode": "Code EAN",
    "sku": "Réf.",
    "quantity": "Qté",
    "price": "Prix TTC",
    "delimiter": ";",
    "decimal_comma": True,
    "encoding": "cp1252",
    "header_row": 3,
}


def mapped_odd_file() -> CorpusFile:
    lines = [
        "Inventaire – Librairie Été;;;;",
        ";;;;",
        "Réf.;Désignation;Code EAN;Qté;Prix TTC",
        f"L-001;Matilda;{BOOK};3;6,99",
        f"L-002;Café crème;;12;2,50",
        f"L-003;Noël 2026 (carte);{EAN8};0;1,20",
    ]
    return CorpusFile(
        "INVENTAIRE.CSV",
        ("\r\n".join(lines) + "\r\n").encode("cp1252"),
        "mapping",
        {canonical(BOOK): (3, 699), "L-002": (12, 250), canonical(EAN8): (0, 120)},
        column_mapping=ODD_MAPPING,
    )


PRESET_FILES = (shopify, square, lightspeed_r, vend, woocommerce, loyverse)
ALL_FILES = (*PRESET_FILES, mapped_odd_file)


def corpus() -> list[CorpusFile]:
    return [make() for make in ALL_FILES]


def write_corpus(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in corpus():
        path = folder / item.name
        path.write_bytes(item.body)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "corpus-out")):
        print(written)
