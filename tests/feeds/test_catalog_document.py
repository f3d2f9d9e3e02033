"""A catalog import document to bounded items: the document's own faults refuse it whole, an
item that cannot be read is rejected alone, and no bytes make the reader raise."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from stockhub.feeds.catalog_document import MAX_ITEM_BYTES, read_catalog_document
from stockhub.feeds.decode import Limits


def test_items_keep_their_index_and_unreadable_ones_are_rejected_alone():
    document = read_catalog_document(json.dumps({"products": [{"sku": "A"}, 5, {"a": "x" * MAX_ITEM_BYTES}]}).encode())
    assert document.invalid_reason is None and document.line_count == 3
    assert document.rows["row"].to_list() == [0, 1]
    assert document.rejections.to_dicts() == [{"row": 2, "field": "item", "value": None, "reason": f"the item is larger than {MAX_ITEM_BYTES} bytes"}]

    lines = read_catalog_document(b'{"sku": "A"}\r\n\n  \n{"sku": \n[[[[[[[[[[1]]]]]]]]]]\n', ndjson=True)
    assert lines.line_count == 3 and lines.rows["row"].to_list() == [0]
    assert [(r["row"], r["reason"][:24]) for r in lines.rejections.to_dicts()] == [(3, "the line is not valid JS"), (4, "the item is nested deepe")]


def test_the_documents_own_faults_refuse_it_whole():
    cases = {
        b"\xef\xbb\xbf{\"products\": [{}]}": None,  # a BOM is fine
        b'{"products": [{}], "head": {}}': "unknown members: head",
        b'[{"sku": "A"}]': 'must be a JSON object {"products"',
        b'{"products": [Infinity]}': "Infinity is not a JSON number",
        b'{"products": [1, 2, 3]}': "more than 2 products",
    }
    for data, reason in cases.items():
        found = read_catalog_document(data, limits=Limits(max_rows=2)).invalid_reason
        assert (found is None) if reason is None else (reason in found), (data, found)
    assert "more than 2 products" in read_catalog_document(b"{}\n{}\n{}\n", ndjson=True, limits=Limits(max_rows=2)).invalid_reason
    assert "no products" in read_catalog_document(b"\n \n", ndjson=True).invalid_reason


@settings(max_examples=150)
@given(data=st.binary(max_size=300) | st.text(alphabet='{}[]":,0123456789 \n\\u"productsNaInfity', max_size=200).map(str.encode), ndjson=st.booleans())
def test_any_bytes_are_read_or_refused_never_raised(data, ndjson):
    document = read_catalog_document(data, ndjson=ndjson)
    assert (document.invalid_reason is None) == (document.line_count > 0)
    for _, item in document.rows.iter_rows():
        json.loads(item)
