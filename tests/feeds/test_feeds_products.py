"""products.csv to validated products and rejected rows; custom identifiers in stock files."""

from __future__ import annotations

from stockhub import feeds

HEADER = "barcode,brand,title,image_url,description"


def read(text: str, **options) -> feeds.ProductFile:
    return feeds.read_product_file(text.encode(), **options)


def test_aliases_and_lower_cased_choices():
    parsed = read(
        "EAN, Brand ,Name,Image Link,Description,Colour,Sex,Age,Condition,Link\n"
        "036000291452,Acme,Cereal,https://img.example/c.jpg,Crunchy,Red,Female,Adult,Used,https://shop.example/c\n"
    )
    assert parsed.invalid_reason is None and parsed.warnings == ()
    row = parsed.rows.row(0, named=True)
    assert row["identifier"] == "00036000291452"
    assert (row["color"], row["gender"], row["age_group"], row["condition"], row["link"]) == ("Red", "female", "adult", "used", "https://shop.example/c")


def test_condition_defaults_to_new_and_unknown_columns_are_reported():
    parsed = read(f"{HEADER},shelf\n9780141383743,Puffin,Matilda,https://img.example/m.jpg,A novel,B4\n")
    assert parsed.rows["condition"].to_list() == ["new"]
    assert parsed.warnings == ("unrecognised or repeated columns ignored: shelf",)


def test_a_header_without_required_columns_makes_the_file_invalid():
    parsed = read("barcode,title\n9780141383743,Matilda\n")
    assert parsed.invalid_reason == "header has no brand, image_url, description column (required: barcode, brand, title, image_url, description)"
    assert parsed.rows.is_empty()


def test_a_later_row_supersedes_an_earlier_one():
    parsed = read(
        f"{HEADER}\n"
        "9780141383743,Puffin,Matilda,https://img.example/1.jpg,First\n"
        "0141383747,Puffin,Matilda,https://img.example/2.jpg,Second\n"
    )
    assert parsed.rows["description"].to_list() == ["Second"]
    assert parsed.superseded_count == 1
    assert parsed.rejections.to_dicts() == [{"row": 2, "field": "barcode", "value": "9780141383743", "reason": "superseded by row 3"}]


def test_lengths_urls_and_group_ids_are_checked():
    parsed = read(
        f"{HEADER},item_group_id\n"
        f"9780141383743,{'B' * 71},T,https://img.example/1.jpg,D,\n"
        "4006381333931,Acme,T2,https://img.example/1.jpg,D,bad id!\n"
        "9781409162988,Acme,T3,http://,D,\n"
        "9780007525546,Acme,T4,https://img.example/ok.jpg,D,G-1_a\n"
    )
    assert [(r["row"], r["field"], r["reason"]) for r in parsed.rejections.to_dicts()] == [
        (2, "brand", "brand is longer than 70 characters"),
        (3, "item_group_id", "item_group_id must be letters, digits, '-' or '_'"),
        (4, "image_url", "image_url must be a public http:// or https:// address"),
    ]
    assert parsed.rows["item_group_id"].to_list() == ["G-1_a"]


def test_custom_identifiers_in_products_and_stock():
    product_rows = f"{HEADER}\n9780141383744,Acme,Mug,https://img.example/m.jpg,A mug\n9780141383743,Puffin,Matilda,https://img.example/b.jpg,A novel\n"
    assert read(product_rows).rejections["field"].to_list() == ["barcode"]  # a wrong check digit
    custom = read(product_rows, custom_identifiers=True)
    assert custom.rows["identifier"].to_list() == ["9780141383744", "09780141383743"]  # GTINs still canonical

    stock = b"barcode,price,quantity\nA1,1.00,1\n9780141383744,2.00,1\nmug-01,3.00,1\n" + b"X" * 65 + b",1,1\n"
    parsed = feeds.read_stock_file(stock, default_currency="GBP", custom_identifiers=True)
    assert parsed.rows["identifier"].to_list() == ["A1", "9780141383744", "mug-01"]  # no check-digit rule
    assert parsed.rejections["reason"].to_list() == [
        "identifier is not a GTIN or ISBN, and is longer than a SKU may be (a SKU is 1–64 letters, digits and - _ . /)"
    ]


def test_lookup_identifier_accepts_custom_identifiers():
    assert feeds.lookup_identifier("0141383747") == "09780141383743"
    assert feeds.lookup_identifier("MUG01") == "MUG01"
