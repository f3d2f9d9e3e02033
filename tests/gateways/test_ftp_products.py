"""Custom product data: products.csv over FTP or HTTP fills the catalog; stock shows title, brand, image."""

from __future__ import annotations

from ftp_support import connect, ftp_gateway, latest_upload, put, tls_files, upload_log  # noqa: F401
from support import make_tenant, upload, wait_for_upload

BOOK = "9780141383743"
PRODUCTS = (
    "barcode,brand,title,image_url,description,condition,colour,size,item_group_id\n"
    f"{BOOK},Puffin,Matilda,https://img.example/matilda.jpg,A novel by Roald Dahl,new,,,\n"
    "MUG01,Acme,Mug,https://img.example/mug.jpg,A hand-thrown mug,,blue,,\n"
    "TEE1S,Acme,Tee,https://img.example/tee-s.jpg,Cotton tee,new,white,S,TEE1\n"
    "TEE1M,Acme,Tee,https://img.example/tee-m.jpg,Cotton tee,new,white,M,TEE1\n"
)
STOCK = f"barcode,price,quantity\n{BOOK},6.99,3\nMUG01,12.00,2\nTEE1S,9.50,1\n".encode()


def enable_custom_products(client, tenant) -> None:
    response = client.patch(f"/v1/stores/{tenant.store}", json={"custom_products": True}, headers=tenant.auth)
    assert response.status_code == 200 and response.json()["custom_products"] is True


def test_products_csv_over_ftp_fills_the_catalog_and_stock_shows_it(client, tenant, ftp_gateway):
    enable_custom_products(client, tenant)
    gateway = ftp_gateway()
    with connect(gateway, tenant.upload_key, tls=True) as ftp:
        put(ftp, "products.csv", PRODUCTS.encode())
    products = latest_upload(client, tenant)
    assert products["type"] == "products" and products["status"] == "applied"
    assert products["counts"]["valid"] == 4 and products["counts"]["rejected"] == 0
    text = upload_log(gateway, tenant.upload_key, products["id"])
    assert "file:      products.csv" in text and "products file" in text

    with connect(gateway, tenant.upload_key) as ftp:
        put(ftp, "stock.csv", STOCK)
    stock = latest_upload(client, tenant)
    assert stock["status"] == "applied" and stock["counts"]["valid"] == 3  # MUG01: a custom identifier

    for spelling in (BOOK, "0141383747", "0" + BOOK):  # any spelling of the barcode
        product = client.get(f"/v1/products/{spelling}", headers=tenant.auth)
        assert product.status_code == 200, spelling
        assert product.json()["title"] == "Matilda" and product.json()["identifier"] == "0" + BOOK
    tee = client.get("/v1/products/TEE1M", headers=tenant.auth).json()
    assert tee == tee | {"brand": "Acme", "size": "M", "color": "white", "item_group_id": "TEE1", "condition": "new"}

    items = {i["identifier"]: i for i in client.get(f"/v1/stores/{tenant.store}/stock", headers=tenant.auth).json()["items"]}
    assert items["0" + BOOK] | {"title": "Matilda", "brand": "Puffin", "image_url": "https://img.example/matilda.jpg"} == items["0" + BOOK]
    assert items["MUG01"]["title"] == "Mug" and items["MUG01"]["on_hand"] == 2
    one = client.get(f"/v1/stores/{tenant.store}/stock/MUG01", headers=tenant.auth).json()
    assert one["brand"] == "Acme" and one["image_url"] == "https://img.example/mug.jpg"


def test_products_over_http_with_rejected_rows_and_reasons(client, tenant):
    body = (
        "Barcode,Brand,Title,Image Link,Description,Condition,Gender\n"
        f"{BOOK},Puffin,Matilda,https://img.example/m.jpg,A novel,new,\n"
        "9780141383744,Puffin,Matilda,https://img.example/m.jpg,A novel,,\n"  # bad check digit
        "036000291452,Acme,Cereal,not-a-url,Crunchy,,\n"
        "4006381333931,Acme,Pen,https://img.example/p.jpg,A pen,broken,\n"
        "9781409162988,Usborne,Atlas,https://img.example/a.jpg,,,\n"
        "9780007525546,Harper,Shirt,https://img.example/s.jpg,A shirt,,robot\n"
    ).encode()
    answer = upload(client, tenant.upload_key, body, kind="products")
    record = wait_for_upload(client, tenant, answer["upload_id"])
    assert record["type"] == "products" and record["status"] == "invalid"  # 5 of 6 rows rejected
    assert [(r["row"], r["field"], r["reason"]) for r in record["rejections"]] == [
        (3, "barcode", "invalid GTIN check digit (expected 3)"),
        (4, "image_url", "image_url must be a public http:// or https:// address"),
        (5, "condition", "condition must be one of new, refurbished, used"),
        (6, "description", "description is required"),
        (7, "gender", "gender must be one of male, female, unisex"),
    ]
    assert client.get(f"/v1/products/{BOOK}", headers=tenant.auth).status_code == 404  # nothing applied

    good = upload(client, tenant.upload_key, body.split(b"\n9780141383744")[0] + b"\n", kind="products")
    assert wait_for_upload(client, tenant, good["upload_id"])["status"] == "applied"
    assert client.get(f"/v1/products/{BOOK}", headers=tenant.auth).json()["brand"] == "Puffin"


def test_variants_need_an_item_group_id(client, tenant):
    body = (
        "barcode,brand,title,image_url,description,size\n"
        "9780141383743,Acme,Tee,https://img.example/s.jpg,Cotton tee,S\n"
        "4006381333931,Acme,Tee,https://img.example/m.jpg,Cotton tee,M\n"
        "9781409162988,Acme,Mug,https://img.example/mug.jpg,A mug,\n"
    ).encode()
    record = wait_for_upload(client, tenant, upload(client, tenant.upload_key, body, kind="products")["upload_id"])
    assert [(r["row"], r["field"]) for r in record["rejections"]] == [(2, "item_group_id"), (3, "item_group_id")]
    assert "2 products share this brand and title" in record["rejections"][0]["reason"]


def test_custom_identifiers_only_when_the_store_has_custom_products(client, tenant):
    # SKUs such as ABC are any store's; digits failing the GTIN check digit only a custom store's
    body = b"barcode,price,quantity\nMUG01,12.00,2\nABC,1.00,1\n9780141383744,2.00,1\n" + f"{BOOK},6.99,3\n".encode()
    record = wait_for_upload(client, tenant, upload(client, tenant.upload_key, body)["upload_id"])
    assert [r["value"] for r in record["rejections"]] == ["9780141383744"]
    enable_custom_products(client, tenant)
    record = wait_for_upload(client, tenant, upload(client, tenant.upload_key, body)["upload_id"])
    assert record["status"] == "applied" and record["counts"]["valid"] == 4
    assert client.get(f"/v1/stores/{tenant.store}/stock/9780141383744", headers=tenant.auth).json()["on_hand"] == 1
    long_id = "X" * 65
    record = wait_for_upload(client, tenant, upload(client, tenant.upload_key, f"barcode,price,quantity\n{long_id},1,1\n{BOOK},1,1\n".encode())["upload_id"])
    assert record["rejections"][0]["reason"] == (
        "identifier is not a GTIN or ISBN, and is longer than a SKU may be (a SKU is 1–64 letters, digits and - _ . /)"
    )


def test_the_catalog_belongs_to_the_organization(client, hub, tenant):
    other = make_tenant(hub, "Other Books")
    body = f"barcode,brand,title,image_url,description\n{BOOK},Puffin,Matilda,https://img.example/m.jpg,A novel\n".encode()
    assert wait_for_upload(client, tenant, upload(client, tenant.upload_key, body, kind="products")["upload_id"])["status"] == "applied"
    assert client.get(f"/v1/products/{BOOK}", headers=other.auth).status_code == 404
    upload_other = upload(client, other.upload_key, f"barcode,price,quantity\n{BOOK},6.99,3\n".encode())
    wait_for_upload(client, other, upload_other["upload_id"])
    level = client.get(f"/v1/stores/{other.store}/stock/{BOOK}", headers=other.auth).json()
    assert "title" not in level and level["on_hand"] == 3
