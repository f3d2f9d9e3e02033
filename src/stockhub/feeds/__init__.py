"""Stock files (CSV or XLSX, NearSt-compatible) to validated rows and rejected rows with reasons.

Pure functions over bytes: no I/O, no database. Everything runs as columnar polars expressions.
A worker calls them through `sandbox.read_isolated`: in a child process with bounded memory and time.
Pull feeds: `fetch.py` fetches a supplier's document (the one module here that does network I/O)
and `documents.py` turns an XML or JSON document into a stock CSV, in the same sandbox.
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
