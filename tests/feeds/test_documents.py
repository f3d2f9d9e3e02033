"""Pulled XML and JSON documents to stock CSVs the stock reader accepts unchanged; hostile
documents refused whole. The sandboxed path (a child process per document) is taken by the
tests named `..._in_the_sandbox`; the others call the conversion in this process."""

from __future__ import annotations

import json

import pytest

from stockhub.errors import Invalid, Malformed
from stockhub.feeds.documents import (
    DocumentRefused,
    JsonMapping,
    XmlMapping,
    document_to_csv,
    stock_csv_from_document,
    validate_mapping,
)
from stockhub.feeds.sandbox import Sandbox
from stockhub.feeds.stock_file import read_stock_file

G = "http://base.google.com/ns/1.0"
MERCHANT_FEED = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:g="{G}">
  <channel>
    <title>Acme Toys</title>
    <item>
      <g:id>A-1</g:id>
      <title>Wooden train &amp; tracks</title>
      <g:gtin>4006381333931</g:gtin>
      <g:price>24.99 GBP</g:price>
      <g:sale_price>19.99 GBP</g:sale_price>
      <g:quantity>7</g:quantity>
    </item>
    <item>
      <g:id>A-2</g:id>
      <g:gtin> 9780141383743 </g:gtin>
      <g:price>8.50 EUR</g:price>
      <g:quantity>0</g:quantity>
    </item>
    <item>
      <g:id>A-3</g:id>
      <g:price>3.00 GBP</g:price>
      <g:quantity>2</g:quantity>
    </item>
  </channel>
</rss>""".encode()
MERCHANT_MAPPING = XmlMapping(
    items="/rss/channel/item",
    fields={
        "barcode": "g:gtin",
        "price": "substring-before(g:price, ' ')",
        "currency": "substring-after(g:price, ' ')",
        "promotion_amount": "substring-before(g:sale_price, ' ')",
        "quantity": "number(g:quantity)",
    },
    namespaces={"g": G},
)
MERCHANT_CSV = (
    b"barcode,price,currency,promotion_amount,quantity\n"
    b"4006381333931,24.99,GBP,19.99,7\n"
    b"9780141383743,8.50,EUR,,0\n"
    b",3.00,GBP,,2\n"
)

SHOP = {
    "data": {
        "products": [
            {"title": "Train", "variants": [
                {"sku": "TRAIN-S", "barcode": "4006381333931", "inventory_quantity": 4, "price": "24.99"},
                {"sku": "TRAIN-L", "barcode": None, "inventory_quantity": 1, "price": 39.0},
            ]},
            {"title": "Kite", "variants": [{"sku": "KITE01", "barcode": "5012345678900", "inventory_quantity": -2, "price": 12.5}]},
            {"title": "Nothing in stock yet", "variants": []},
        ]
    }
}
SHOP_MAPPING = JsonMapping(
    items="data.products[].variants[]",
    fields={"gtin": "barcode", "sku": "sku", "qty": "inventory_quantity", "price": "price"},
)
SHOP_CSV = b"gtin,sku,quantity,price\n4006381333931,TRAIN-S,4,24.99\n,TRAIN-L,1,39\n5012345678900,KITE01,-2,12.5\n"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<items><item><sku>&lol9;</sku><price>1</price><qty>1</qty></item></items>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE items [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<items><item><sku>&secret;</sku><price>1.00</price><qty>1</qty></item></items>"""
XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE items [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<items><item><sku>ABC123</sku><price>1.00</price><qty>1</qty></item></items>"""
PLAIN_MAPPING = XmlMapping(items="//item", fields={"sku": "sku", "price": "price", "quantity": "qty"})


def refusal(body: bytes, format: str, mapping, **options) -> str:
    """The reason the document is refused: in the sandbox with `sandbox=...`, else in this process."""
    with pytest.raises(DocumentRefused) as refused:
        if options:
            stock_csv_from_document(body, format, mapping, **options)
        else:
            document_to_csv(body, format, mapping)
    assert isinstance(refused.value, Malformed)  # a 400 problem wherever it surfaces
    return refused.value.reason


def read(csv: bytes):
    return read_stock_file(csv, default_currency="GBP")


# --- XML -----------------------------------------------------------------------------------


def test_a_google_merchant_feed_with_its_namespace_in_the_sandbox():
    csv = stock_csv_from_document(MERCHANT_FEED, "xml", MERCHANT_MAPPING)
    assert csv == MERCHANT_CSV
    parsed = read(csv)
    assert parsed.invalid_reason is None
    assert parsed.rows.select("identifier", "quantity", "price_minor", "currency", "promotion_minor").rows() == [
        ("04006381333931", 7, 2499, "GBP", 1999),
        ("09780141383743", 0, 850, "EUR", None),
    ]
    # the item without a barcode is one rejected row, with the reader's usual reason
    assert parsed.rejections.select("row", "field").rows() == [(4, "identifier")]


def test_a_default_namespace_needs_a_prefix_in_the_mapping():
    feed = b'<feed xmlns="urn:acme:stock"><p><ean>4006381333931</ean><rrp>2.50</rrp><n>3</n></p></feed>'
    mapping = XmlMapping(items="/s:feed/s:p", fields={"EAN": "s:ean", "retail price": "s:rrp", "qty": "s:n"}, namespaces={"s": "urn:acme:stock"})
    assert document_to_csv(feed, "xml", mapping) == b"gtin,price,quantity\n4006381333931,2.50,3\n"


def test_attributes_text_and_nested_elements():
    feed = b"""<stock><line sku="SKU0001"><qty on_hand="5"/><price currency="EUR"><amount>1.20</amount></price></line></stock>"""
    mapping = XmlMapping(items="//line", fields={"sku": "@sku", "quantity": "qty/@on_hand", "price": "price", "currency": "price/@currency"})
    assert document_to_csv(feed, "xml", mapping) == b"sku,quantity,price,currency\nSKU0001,5,1.20,EUR\n"


def test_values_that_need_quoting_stay_one_cell():
    feed = b"<s><i><sku>AB,12\nCD</sku><p>=1+1</p><q>1</q></i></s>"
    csv = document_to_csv(feed, "xml", XmlMapping(items="//i", fields={"sku": "sku", "price": "p", "quantity": "q"}))
    assert csv == b'sku,price,quantity\n"AB,12\nCD",=1+1,1\n'
    parsed = read(csv)
    assert parsed.line_count == 1 and parsed.rejections["field"].to_list() == ["identifier"]


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE, XXE_PARAMETER], ids=["billion-laughs", "xxe", "xxe-parameter-entity"])
def test_entity_documents_are_refused(document):
    with pytest.raises(DocumentRefused) as refused:
        document_to_csv(document, "xml", PLAIN_MAPPING)
    assert refused.value.reason.startswith("the XML document was refused: ")
    assert "root:" not in refused.value.reason  # nothing of /etc/passwd


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_entity_documents_are_refused_in_the_sandbox(document):
    with pytest.raises(DocumentRefused) as refused:
        stock_csv_from_document(document, "xml", PLAIN_MAPPING)
    assert isinstance(refused.value, Malformed)
    assert "entities" in refused.value.reason


def test_the_xxe_refusal_names_the_entity():
    with pytest.raises(DocumentRefused, match=r"it declares entities \(secret\); entities are never expanded or fetched"):
        document_to_csv(XXE, "xml", PLAIN_MAPPING)


@pytest.mark.parametrize("dtd", ["http://127.0.0.1:9/items.dtd", "file:///dev/zero", "file:///etc/passwd"])
def test_a_doctype_without_entities_is_read_and_its_dtd_never_loaded(dtd):
    feed = f'<!DOCTYPE items SYSTEM "{dtd}"><items><item><sku>ABC123</sku><price>1</price><qty>2</qty></item></items>'
    assert document_to_csv(feed.encode(), "xml", PLAIN_MAPPING) == b"sku,price,quantity\nABC123,1,2\n"


def test_an_undefined_entity_is_malformed():
    reason = refusal(b"<items><item><sku>ABC&nbsp;123</sku></item></items>", "xml", PLAIN_MAPPING)
    assert reason.startswith("the XML document is malformed: Entity 'nbsp' not defined")


def test_malformed_xml_in_the_sandbox():
    reason = refusal(b"<items><item><sku>ABC123</item></items>", "xml", PLAIN_MAPPING, sandbox=Sandbox())
    assert reason.startswith("the XML document is malformed: Opening and ending tag mismatch: sku line 1 and item, line 1, column 32")


def test_items_that_match_nothing_are_refused():
    with pytest.raises(DocumentRefused, match=r"the items expression '//item' found no items in the document"):
        document_to_csv(b"<products/>", "xml", PLAIN_MAPPING)


def test_an_items_expression_selecting_text_is_refused():
    with pytest.raises(DocumentRefused, match=r"the items expression '//item/sku/text\(\)' must select elements"):
        document_to_csv(b"<s><item><sku>A</sku></item></s>", "xml", XmlMapping("//item/sku/text()", PLAIN_MAPPING.fields))


def test_an_empty_document_is_refused():
    with pytest.raises(DocumentRefused, match="the XML document is empty"):
        document_to_csv(b"  \n", "xml", PLAIN_MAPPING)


# --- JSON ----------------------------------------------------------------------------------


def test_nested_json_flattened_in_the_sandbox():
    csv = stock_csv_from_document(json.dumps(SHOP).encode(), "json", SHOP_MAPPING)
    assert csv == SHOP_CSV
    parsed = read(csv)
    assert parsed.invalid_reason is None
    assert parsed.rows.select("identifier", "quantity", "price_minor").rows() == [
        ("04006381333931", 4, 2499),
        ("TRAIN-L", 1, 3900),  # a SKU keeps its characters (feeds/identifiers.py)
        ("05012345678900", -2, 1250),
    ]


def test_json_values_become_cells():
    document = {"items": [{"id": ["ABC123"], "stock": {"n": 2.0}, "p": 1e-7, "ok": True, "tags": ["a", "b"]}]}
    mapping = JsonMapping("items", {"sku": "id", "quantity": "stock.n", "price": "p", "currency": "ok", "promotion_amount": "tags"})
    assert document_to_csv(json.dumps(document).encode(), "json", mapping) == (
        b'sku,quantity,price,currency,promotion_amount\nABC123,2,1e-07,true,"[""a"",""b""]"\n'
    )


def test_json_with_a_byte_order_mark_and_utf16():
    body = json.dumps({"items": [{"sku": "ABC123", "q": 1, "p": 2}]})
    mapping = JsonMapping("items", {"sku": "sku", "quantity": "q", "price": "p"})
    expected = b"sku,quantity,price\nABC123,1,2\n"
    assert document_to_csv(b"\xef\xbb\xbf" + body.encode(), "json", mapping) == expected
    assert document_to_csv(body.encode("utf-16"), "json", mapping) == expected


def test_malformed_json_in_the_sandbox():
    reason = refusal(b'{"items": [{"a": 1 "b": 2}]}', "json", SHOP_MAPPING, sandbox=Sandbox())
    assert reason == "the JSON document is malformed: Expecting ',' delimiter (line 1, column 20)"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"data": {}}, "the items expression 'data.products[].variants[]' found no items in the document"),
        ({"data": {"products": []}}, "the items expression 'data.products[].variants[]' found no items in the document"),
    ],
)
def test_json_items_that_match_nothing(document, reason):
    with pytest.raises(DocumentRefused) as refused:
        document_to_csv(json.dumps(document).encode(), "json", SHOP_MAPPING)
    assert refused.value.reason == reason


def test_json_items_must_be_a_list():
    mapping = JsonMapping("data", {"sku": "sku", "quantity": "q", "price": "p"})
    with pytest.raises(DocumentRefused, match=r"must select a list \(it selected an object\)"):
        document_to_csv(b'{"data": {"sku": "A"}}', "json", mapping)


def test_a_field_expression_failing_on_an_item_names_it():
    mapping = JsonMapping("items", {"sku": "sku", "quantity": "sum(q)", "price": "p"})
    reason = refusal(b'{"items": [{"sku": "A", "q": [1, 2]}, {"sku": "B", "q": "x"}]}', "json", mapping)
    assert reason.startswith("mapping.fields.quantity ('sum(q)') failed on item 2: In function sum(), invalid type for value: x")


def test_json_nested_too_deeply():
    with pytest.raises(DocumentRefused, match="nested too deeply"):
        document_to_csv(b"[" * 100_000 + b"]" * 100_000, "json", SHOP_MAPPING)


# --- pass-through, the sandbox's limits ----------------------------------------------------


def test_csv_and_xlsx_pass_through():
    body = b"barcode,price,quantity\n4006381333931,1,1\n"
    assert stock_csv_from_document(body, "csv", None) is body
    assert stock_csv_from_document(b"PK\x03\x04...", "xlsx") == b"PK\x03\x04..."


def test_a_document_that_takes_too_long_is_refused():
    many = b"<s>" + b"<i><sku>A</sku></i>" * 3000 + b"</s>"
    slow = XmlMapping("//i", {"sku": "count(//i[count(//i) > 0])", "price": "sku", "quantity": "sku"})
    reason = refusal(many, "xml", slow, sandbox=Sandbox(timeout_seconds=0.5))
    assert reason == "the document could not be read: the reader took longer than 0.5 s"


# --- mappings ------------------------------------------------------------------------------


def test_good_mappings_pass():
    validate_mapping("xml", MERCHANT_MAPPING)
    validate_mapping("json", SHOP_MAPPING)
    validate_mapping("csv", None)


def invalid(format: str, mapping) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        validate_mapping(format, mapping)
    return {error.field: error.message for error in caught.value.errors}


def test_a_bad_xpath_is_named():
    errors = invalid("xml", XmlMapping("//item[", {"sku": "sku", "price": "price", "quantity": "qty"}))
    assert list(errors) == ["mapping.items"] and errors["mapping.items"].startswith("'//item[' is not a usable XPath expression (")


def test_an_undeclared_namespace_prefix_is_named():
    errors = invalid("xml", XmlMapping("//item", {"barcode": "g:gtin", "price": "price", "quantity": "qty"}))
    assert errors == {"mapping.fields.barcode": "'g:gtin' is not a usable XPath expression (undefined namespace prefix: declare it in mapping.namespaces)"}


def test_an_unknown_xpath_function_is_named():
    errors = invalid("xml", XmlMapping("//item", {"sku": "sku", "price": "money(price)", "quantity": "qty"}))
    assert list(errors) == ["mapping.fields.price"] and "'money(price)'" in errors["mapping.fields.price"]


def test_an_items_xpath_that_computes_a_value_is_refused():
    errors = invalid("xml", XmlMapping("count(//item)", {"sku": "sku", "price": "price", "quantity": "qty"}))
    assert errors == {"mapping.items": "'count(//item)' computes a value; it must select the item elements"}


def test_a_bad_jmespath_is_named():
    errors = invalid("json", JsonMapping("data.products[", {"sku": "sku", "price": "price", "quantity": "length(a, b)"}))
    assert set(errors) == {"mapping.items", "mapping.fields.quantity"}
    assert errors["mapping.items"].startswith("'data.products[' is not a valid JMESPath expression (")
    assert errors["mapping.fields.quantity"].startswith("'length(a, b)' is not a usable JMESPath expression (")


def test_columns_must_be_stock_columns_with_an_identifier_price_and_quantity():
    errors = invalid("json", JsonMapping("items", {"colour": "c", "qty": "q", "quantity": "n"}))
    assert errors["mapping.fields.colour"].startswith("not a stock column (one of barcode, gtin, sku, price, quantity")
    assert errors["mapping.fields.quantity"] == "maps the same column as 'qty' (quantity)"
    with pytest.raises(Invalid) as caught:
        validate_mapping("json", JsonMapping("items", {"quantity": "q"}))
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("mapping.fields", "map barcode, gtin or sku: what names each item's product"),
        ("mapping.fields", "map price: the stock file needs it"),
    ]


def test_mapping_shape_and_format():
    assert invalid("yaml", None) == {"format": "one of csv, xlsx, xml, json"}
    assert invalid("xml", None) == {"mapping": "an XML mapping: items and fields"}
    assert invalid("json", MERCHANT_MAPPING) == {"mapping": "a JSON mapping: items and fields"}
    assert invalid("csv", SHOP_MAPPING) == {"mapping": "only for xml and json"}
    assert invalid("xml", XmlMapping("//i", {"sku": "s", "price": "p", "quantity": "q"}, {"1bad": "urn:x"})) == {
        "mapping.namespaces.1bad": "a prefix is a name (letters, digits, _ . -) bound to a non-empty namespace URI"
    }
    assert invalid("json", JsonMapping(" ", {"sku": "s", "price": "p", "quantity": "x" * 1001})) == {
        "mapping.items": "an expression is required",
        "mapping.fields.quantity": "at most 1000 characters",
    }
