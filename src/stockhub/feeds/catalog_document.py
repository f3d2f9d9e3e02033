"""A catalog import document (JSON or NDJSON) to bounded items: untrusted bytes in, each product
as one compact JSON text out, with the document's own faults (not JSON, too deep, too many
items, no products) as its `invalid_reason`, and items that cannot even be read as rejections.

JSON: `{"products": [ {...}, ... ]}`. NDJSON (`application/x-ndjson`): one product object per
line, blank lines skipped. An item's index is its place in `products` (from 0), or its line
(from 0) in NDJSON. What an item must hold is checked later (services/catalog_import.py): this
module only makes sure that what is handed on is small and shallow enough to check.

Pure, like the file readers; a worker runs it in the sandbox (feeds/sandbox.py) when the document
is large, with the sandbox's `Limits.rows` as the most items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from stockhub.feeds.decode import Limits

MAX_DEPTH = 10  # {"products": [{"prices": [{...}]}]} is 5 deep
MAX_ITEM_BYTES = 256 * 1024  # one product, as compact JSON
ITEM_SCHEMA = {"row": pl.Int64, "item": pl.String}
REJECTION_SCHEMA = {"row": pl.Int64, "field": pl.String, "value": pl.String, "reason": pl.String}


class DocumentError(ValueError):
    """The document as a whole cannot be read; the message says why."""


@dataclass(frozen=True)
class CatalogDocument:
    rows: pl.DataFrame  # ITEM_SCHEMA: index and compact JSON of each readable item
    rejections: pl.DataFrame  # REJECTION_SCHEMA: items that could not be read
    line_count: int  # items in the document
    superseded_count: int
    warnings: tuple[str, ...]
    invalid_reason: str | None


def read_catalog_document(data: bytes, *, ndjson: bool = False, limits: Limits = Limits(), max_depth: int = MAX_DEPTH) -> CatalogDocument:
    """Read a catalog import document; never raises for bad content."""
    items: list[tuple[int, str]] = []
    rejected: list[tuple[int, str, str | None, str]] = []
    try:
        text = _text(data)
        entries = _ndjson_entries(text) if ndjson else _json_entries(text, max_depth)
        count = 0
        for index, entry in entries:
            count += 1
            if count > limits.max_rows:
                raise DocumentError(f"the document has more than {limits.max_rows} products (the most one import takes)")
            if isinstance(entry, _Unreadable):
                rejected.append((index, "item", None, entry.reason))
                continue
            if _depth(entry) > max_depth - 2:  # an item is 2 levels down in {"products": [...]}
                rejected.append((index, "item", None, f"the item is nested deeper than {max_depth - 2} levels"))
                continue
            compact = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
            if len(compact.encode()) > MAX_ITEM_BYTES:
                rejected.append((index, "item", None, f"the item is larger than {MAX_ITEM_BYTES} bytes"))
                continue
            items.append((index, compact))
        if count == 0:
            raise DocumentError('the document has no products: send {"products": [...]}' + (" or one product per line" if ndjson else ""))
    except DocumentError as error:
        return _invalid(str(error))
    return CatalogDocument(
        rows=pl.DataFrame(items, schema=ITEM_SCHEMA, orient="row"),
        rejections=pl.DataFrame(rejected, schema=REJECTION_SCHEMA, orient="row"),
        line_count=count,
        superseded_count=0,
        warnings=(),
        invalid_reason=None,
    )


@dataclass(frozen=True)
class _Unreadable:
    reason: str


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentError(f"the document is not UTF-8 text (byte {error.start})") from None


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _parse(text: str):
    """json.loads without NaN/Infinity; a JSONDecodeError or RecursionError escapes."""
    return json.loads(text, parse_constant=_no_constants)


def _json_entries(text: str, max_depth: int):
    try:
        document = _parse(text)
    except RecursionError:
        raise DocumentError(f"the document is nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as error:
        raise DocumentError(f"the document is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except ValueError as error:
        raise DocumentError(f"the document is not valid JSON: {error}") from None
    if _depth(document) > max_depth:
        raise DocumentError(f"the document is nested deeper than {max_depth} levels")
    if not isinstance(document, dict) or "products" not in document:
        raise DocumentError('the document must be a JSON object {"products": [...]}')
    extra = sorted(set(document) - {"products"})
    if extra:
        raise DocumentError(f"the document has unknown members: {', '.join(extra)} (only products)")
    products = document["products"]
    if not isinstance(products, list):
        raise DocumentError("products must be a JSON array of products")
    return enumerate(products)


def _ndjson_entries(text: str):
    for index, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        try:
            yield index, _parse(line)
        except RecursionError:
            yield index, _Unreadable("the line is nested too deep")
        except json.JSONDecodeError as error:
            yield index, _Unreadable(f"the line is not valid JSON: {error.msg} (column {error.colno})")
        except ValueError as error:
            yield index, _Unreadable(f"the line is not valid JSON: {error}")


def _depth(value, level: int = 1) -> int:
    """How deep arrays and objects nest (a scalar is 0, [] or {} is 1); stops counting past 64."""
    if not isinstance(value, dict | list):
        return level - 1
    if level > 64:
        return level
    children = value.values() if isinstance(value, dict) else value
    return max((_depth(child, level + 1) for child in children), default=level)


def _invalid(reason: str) -> CatalogDocument:
    return CatalogDocument(
        rows=pl.DataFrame(schema=ITEM_SCHEMA),
        rejections=pl.DataFrame(schema=REJECTION_SCHEMA),
        line_count=0,
        superseded_count=0,
        warnings=(),
        invalid_reason=reason,
    )
