"""The FTP/FTPS gateway with real clients (ftplib, curl): a POS changes only the host name."""

from __future__ import annotations

import ftplib
import threading

import pytest

from ftp_support import connect, curl, ftp_gateway, get, latest_upload, put, tls_files, upload_log  # noqa: F401
from support import make_tenant

BOOK = "9780141383743"
STOCK = f"barcode,price,quantity\n{BOOK},6.99,3\n036000291452,2.50,0\n".encode()


def level(client, tenant, identifier=BOOK) -> dict:
    return client.get(f"/v1/stores/{tenant.store}/stock/{identifier}", headers=tenant.auth).json()


@pytest.mark.parametrize(("tls", "passive"), [(False, True), (False, False), (True, True), (True, False)])
def test_ftplib_upload_is_ingested_and_upload_log_describes_it(client, tenant, ftp_gateway, tls, passive):
    gateway = ftp_gateway()
    with connect(gateway, tenant.upload_key, tls=tls, passive=passive) as ftp:
        assert put(ftp, "stock.csv", STOCK).startswith("226")
        assert "stock.csv" in ftp.nlst()
        assert get(ftp, "stock.csv") == STOCK  # its own files can be downloaded
    record = latest_upload(client, tenant)
    assert record["status"] == "applied" and record["source"] == "ftp" and record["filename"] == "stock.csv"
    assert record["type"] == "stock" and record["counts"]["valid"] == 2
    assert level(client, tenant)["on_hand"] == 3

    text = upload_log(gateway, tenant.upload_key, record["id"])
    assert "file:      stock.csv" in text and "status:    applied" in text
    assert "lines:     2 (2 valid, 0 rejected" in text and "received over ftp" in text


# Active FTPS is covered with ftplib above: curl 7.87 and 7.88 (Debian 12's) do not start TLS on
# an active data connection (curl/curl#10666, fixed in 8.0), and the gateway rightly refuses the
# plain data with 522.
@pytest.mark.parametrize(("tls", "passive"), [(False, True), (False, False), (True, True)])
def test_curl_upload_then_download_the_log(client, tenant, ftp_gateway, tmp_path, tls, passive):
    gateway = ftp_gateway()
    (tmp_path / "stock.csv").write_bytes(STOCK)
    base = f"ftp://apikey:{tenant.upload_key}@127.0.0.1:{gateway.port}/"
    options = (["--ssl-reqd", "-k"] if tls else []) + ([] if passive else ["-P", "127.0.0.1"])
    curl(*options, "-T", str(tmp_path / "stock.csv"), base)
    record = latest_upload(client, tenant)
    assert record["status"] == "applied" and record["source"] == "ftp"
    assert level(client, tenant)["on_hand"] == 3
    upload_log(gateway, tenant.upload_key, record["id"])  # written by the worker
    text = curl(*options, base + "upload_log.txt").stdout
    assert record["id"] in text and "stock.csv" in text


def test_curl_ssl_reqd_against_a_plain_gateway_fails(tenant, ftp_gateway, tmp_path):
    gateway = ftp_gateway(ftp_tls_cert=None, ftp_tls_key=None)
    (tmp_path / "stock.csv").write_bytes(STOCK)
    result = curl("--ssl-reqd", "-k", "-T", str(tmp_path / "stock.csv"), f"ftp://apikey:{tenant.upload_key}@127.0.0.1:{gateway.port}/", check=False)
    assert result.returncode != 0


def test_user_name_is_case_insensitive_and_a_wrong_key_gets_530(tenant, ftp_gateway):
    gateway = ftp_gateway()
    with connect(gateway, tenant.upload_key, user="APIKey") as ftp:
        assert ftp.pwd() == "/"
    for user, password in (("apikey", "not-the-key"), ("someone", tenant.upload_key), ("apikey", "")):
        with pytest.raises(ftplib.error_perm, match="^530"):
            connect(gateway, password, user=user)


def test_repeated_failures_from_one_address_are_refused_for_a_while(tenant, ftp_gateway):
    gateway = ftp_gateway(ftp_max_login_failures=3, ftp_lockout_seconds=600)
    for _ in range(3):
        with pytest.raises(ftplib.error_perm, match="^530"):
            connect(gateway, "guess-" + "x" * 30)
    # now even the right key is refused from this address: at connect, or at login
    with pytest.raises((ftplib.error_temp, ftplib.error_perm), match="^(421|530)"):
        connect(gateway, tenant.upload_key)


def test_delete_rename_append_and_overwriting_the_log_are_refused(client, tenant, ftp_gateway):
    gateway = ftp_gateway()
    with connect(gateway, tenant.upload_key) as ftp:
        put(ftp, "stock.csv", STOCK)
        for command in (lambda: ftp.delete("stock.csv"), lambda: ftp.rename("stock.csv", "other.csv")):
            with pytest.raises(ftplib.error_perm, match="^550"):
                command()
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.storbinary("APPE stock.csv", __import__("io").BytesIO(b"more"))
        record = latest_upload(client, tenant)
        upload_log(gateway, tenant.upload_key, record["id"])
        with pytest.raises(ftplib.error_perm, match="^550"):
            put(ftp, "upload_log.txt", b"forged")
        assert ftp.mkd("archive") == "/archive"  # folders inside its own are fine
        assert {"stock.csv", "upload_log.txt", "archive"} <= set(ftp.nlst())


def test_a_store_can_neither_see_nor_touch_another_stores_files(client, hub, tenant, ftp_gateway):
    other = make_tenant(hub, "Other Books")
    gateway = ftp_gateway()
    with connect(gateway, other.upload_key) as ftp:
        put(ftp, "secret.csv", STOCK)
    other_folder = hub.storage.local_folder(f"ftp/{other.store}")
    assert (other_folder / "secret.csv").exists()
    with connect(gateway, tenant.upload_key) as ftp:
        assert "secret.csv" not in ftp.nlst()
        ftp.cwd("../../..")
        assert ftp.pwd() == "/" and "secret.csv" not in ftp.nlst()
        for path in (f"../{other.store}/secret.csv", f"/{other.store}/secret.csv", str(other_folder / "secret.csv"), "/etc/passwd", "../../secret_key"):
            with pytest.raises(ftplib.error_perm, match="^550"):
                get(ftp, path)
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd(f"../{other.store}")
        # an upload aimed outside is aimed inside its own folder, where no such folder exists
        with pytest.raises(ftplib.error_perm, match="^550"):
            put(ftp, f"../{other.store}/stock.csv", STOCK)
        assert put(ftp, "../../stock.csv", STOCK).startswith("226")  # lands in its own folder
        assert "stock.csv" in ftp.nlst()
    assert not (other_folder / "stock.csv").exists()
    assert latest_upload(client, tenant)["status"] == "applied"
    assert level(client, tenant)["on_hand"] == 3
    assert client.get(f"/v1/stores/{other.store}/stock/{BOOK}", headers=other.auth).json()["on_hand"] == 3  # from secret.csv only


def test_an_oversize_file_is_refused_and_not_kept(client, tenant, ftp_gateway):
    gateway = ftp_gateway(upload_max_bytes=2000)
    big = b"barcode,price,quantity\n" + f"{BOOK},6.99,3\n".encode() * 10_000
    ftp = connect(gateway, tenant.upload_key)
    try:
        # the 552 reply, or the data connection cut under the client while it still sends
        with pytest.raises((ftplib.error_perm, ConnectionError)) as refused:
            put(ftp, "stock.csv", big)
        if isinstance(refused.value, ftplib.error_perm):
            assert str(refused.value).startswith("552 The file is larger than the limit of 2000 bytes")
    finally:
        ftp.close()
    with connect(gateway, tenant.upload_key) as ftp:
        assert "stock.csv" not in ftp.nlst()
        assert put(ftp, "small.csv", STOCK).startswith("226")
    assert latest_upload(client, tenant)["filename"] == "small.csv"
    listed = client.get(f"/v1/stores/{tenant.store}/uploads", headers=tenant.auth).json()["items"]
    assert [u["filename"] for u in listed] == ["small.csv"]


def test_tls_required_refuses_a_plain_login(client, tenant, ftp_gateway, tmp_path):
    gateway = ftp_gateway(ftp_tls_required=True)
    with pytest.raises(ftplib.error_perm, match="^550 SSL/TLS required"):
        connect(gateway, tenant.upload_key)
    (tmp_path / "stock.csv").write_bytes(STOCK)
    refused = curl("-T", str(tmp_path / "stock.csv"), f"ftp://apikey:{tenant.upload_key}@127.0.0.1:{gateway.port}/", check=False)
    assert refused.returncode != 0
    with connect(gateway, tenant.upload_key, tls=True) as ftp:
        assert put(ftp, "stock.csv", STOCK).startswith("226")
    assert latest_upload(client, tenant)["status"] == "applied"


def test_tls_below_1_2_is_refused(tenant, ftp_gateway):
    import ssl

    gateway = ftp_gateway()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    except ValueError:
        pytest.fail("this Python cannot offer TLS 1.1")
    ftp = ftplib.FTP_TLS(context=context, timeout=30)
    ftp.connect("127.0.0.1", gateway.port)
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        ftp.auth()
    ftp.close()


def test_a_bad_file_is_explained_in_upload_log(client, tenant, ftp_gateway):
    gateway = ftp_gateway()
    body = f"barcode,price,quantity\n{BOOK},6.99,3\n9780141383744,5.00,1\n036000291452,abc,2\n".encode()
    with connect(gateway, tenant.upload_key) as ftp:
        put(ftp, "stock.csv", body)
    record = latest_upload(client, tenant)
    text = upload_log(gateway, tenant.upload_key, record["id"])
    assert "status:    invalid" in text
    assert "lines:     3 (1 valid, 2 rejected" in text
    assert "row 3, identifier '9780141383744': invalid GTIN check digit (expected 3)" in text
    assert "row 4, price 'abc': price must be a number" in text
    assert f"/v1/uploads/{record['id']}/rejections.csv" in text


def test_twenty_stores_uploading_at_once_each_land_in_their_own_store(client, hub, ftp_gateway):
    gateway = ftp_gateway()
    tenants = [make_tenant(hub, f"Shop {n}") for n in range(20)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(tenants))

    def upload(n: int) -> None:
        try:
            with connect(gateway, tenants[n].upload_key) as ftp:
                start.wait(30)
                put(ftp, "stock.csv", f"barcode,price,quantity\n{BOOK},6.99,{n + 1}\n".encode())
        except BaseException as error:  # reported below, with the store
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(len(tenants))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    for n, shop in enumerate(tenants):
        record = latest_upload(client, shop)
        assert record["status"] == "applied" and record["store_id"] == shop.store
        assert level(client, shop)["on_hand"] == n + 1
        with connect(gateway, shop.upload_key) as ftp:
            assert ftp.nlst() == ["stock.csv"] or set(ftp.nlst()) == {"stock.csv", "upload_log.txt"}
