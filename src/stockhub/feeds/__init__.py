"""Stock files (CSV or XLSX, NearSt-compatible) to validated rows and rejected rows with reasons.

Pure functions over bytes: no I/O, no database. Everything runs as columnar polars expressions.
"""

from stockhub.feeds.identifiers import (
    IdentifierRule,
    InvalidIdentifier,
    canonical_identifier,
    canonical_identifiers,
    lookup_identifier,
    rule_for,
)
from stockhub.feeds.product_file import ProductFile, read_product_file
from stockhub.feeds.stock_file import StockFile, read_stock_file

__all__ = [
    "IdentifierRule",
    "InvalidIdentifier",
    "StockFile",
    "canonical_identifier",
    "canonical_identifiers",
    "lookup_identifier",
    "ProductFile",
    "read_product_file",
    "read_stock_file",
    "rule_for",
]
