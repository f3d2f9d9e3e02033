"""Fetching a pull feed's document from real servers: HTTP(S) in a thread, pyftpdlib as FTP and FTPS."""

from __future__ import annotations

import gzip
import ssl
import time

import pytest

from feed_servers import FTP_PASSWORD, FTP_USER, Document, SilentServer, SupplierFtp, SupplierHttp
from stockhub.errors import Invalid
from stockhub.feeds.fetch import NOT_MODIFIED, FetchFailed, Fetched, NotModified, Source, check_source, fetch
from stockhub.gateways.ftp_tls import ensure_self_signed
from stockhub.settings import Settings

CSV = b"barcode,price,quantity\n4006381333931,9.99,3\n"
LAST_MODIFIED = "Mon, 30 Nov 2026 12:00:00 GMT"
LOCAL = {"allow_loopback": True}  # the supplier's test servers are on 127.0.0.1; private addresses stay refused
QUICK = 1.0  # seconds: the deadline of the tests that must time out


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return ensure_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def trusting(tls_files):
    """A client context that trusts the test certificate (for 127.0.0.1 and localhost)."""
    return ssl.create_default_context(cafile=str(tls_files[0]))


@pytest.fixture(scope="module")
def http():
    server = SupplierHttp()
    server.documents["/stock.csv"] = Document(CSV, etag='"v1"', last_modified=LAST_MODIFIED, auth=("acme", "p@ss:w/rd"))
    server.documents["/open.csv"] = Document(CSV, last_modified=LAST_MODIFIED)
    server.documents["/big.csv"] = Document(b"x" * (64 * 1024 + 1))
    server.documents["/gone.csv"] = Document(CSV)
    server.routes["/hang"] = server.hang
    server.routes["/drip"] = server.drip
    server.routes["/endless"] = server.endless
    server.routes["/broken"] = lambda h: h.answer(503, b"down for maintenance")
    server.routes["/moved"] = lambda h: h.redirect("/stock.csv", 301)
    server.routes["/elsewhere"] = lambda h: h.redirect(f"http://localhost:{server.port}/stock.csv")
    server.routes["/to-private"] = lambda h: h.redirect("http://10.0.0.1/stock.csv")
    server.routes["/to-metadata"] = lambda h: h.redirect("http://169.254.169.254/latest/meta-data/")
    server.routes["/to-file"] = lambda h: h.redirect("file:///etc/passwd")
    server.routes["/loop"] = lambda h: h.redirect("/loop")
    gzipped = gzip.compress(CSV)
    server.routes["/gzip"] = lambda h: h.answer(200, gzipped, {"Content-Encoding": "gzip", "Content-Type": "text/csv"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def https(tls_files):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, tls_files))
    server = SupplierHttp(tls=context)
    server.documents["/stock.csv"] = Document(CSV, etag='"v1"')
    yield server
    server.stop()


def failure(source: Source | str, **options) -> FetchFailed:
    with pytest.raises(FetchFailed) as caught:
        fetch(source if isinstance(source, Source) else Source(source), **options)
    return caught.value


# --- HTTP ----------------------------------------------------------------------------------


def test_basic_auth_and_etag_then_not_modified(http):
    source = Source(http.url("/stock.csv"), username="acme", password="p@ss:w/rd")
    first = fetch(source, **LOCAL)
    assert first == Fetched(CSV, etag='"v1"', last_modified=LAST_MODIFIED, content_type="text/csv")
    again = fetch(source, etag=first.etag, last_modified=first.last_modified, **LOCAL)
    assert again is NOT_MODIFIED and isinstance(again, NotModified)
    path, headers = http.requests[-1]
    assert headers["if-none-match"] == '"v1"' and headers["if-modified-since"] == LAST_MODIFIED


def test_credentials_in_the_url_are_percent_decoded_and_never_shown(http):
    source = Source(http.url("/stock.csv", userinfo="acme:p%40ss%3Aw%2Frd"))
    assert fetch(source, **LOCAL).body == CSV
    assert source.redacted() == http.url("/stock.csv", userinfo="acme")
    assert "p%40ss" not in repr(source)


def test_separate_credentials_win_over_the_urls(http):
    source = Source(http.url("/stock.csv", userinfo="acme:wrong"), password="p@ss:w/rd")
    assert fetch(source, **LOCAL).body == CSV


def test_last_modified_alone_makes_the_request_conditional(http):
    first = fetch(Source(http.url("/open.csv")), **LOCAL)
    assert first.etag is None and first.last_modified == LAST_MODIFIED
    assert fetch(Source(http.url("/open.csv")), last_modified=first.last_modified, **LOCAL) is NOT_MODIFIED


def test_wrong_password_is_401_not_retried(http):
    failed = failure(Source(http.url("/stock.csv"), username="acme", password="guess"), **LOCAL)
    assert failed.reason == f"HTTP 401 Unauthorized from {http.url('/stock.csv', userinfo='acme')}"
    assert not failed.retryable
    assert "guess" not in failed.reason


def test_missing_document_is_404(http):
    failed = failure(http.url("/nothing.csv"), **LOCAL)
    assert failed.reason == f"HTTP 404 Not Found from {http.url('/nothing.csv')}" and not failed.retryable


def test_server_error_is_retried(http):
    failed = failure(http.url("/broken"), **LOCAL)
    assert failed.reason.startswith("HTTP 503 Service Unavailable from ") and failed.retryable


def test_a_server_that_hangs_times_out_within_the_deadline(http):
    started = time.monotonic()
    failed = failure(http.url("/hang"), timeout=QUICK, **LOCAL)
    assert failed.reason == f"timed out after {QUICK:g} s fetching {http.url('/hang')}" and failed.retryable
    assert time.monotonic() - started < QUICK + 3


def test_a_server_that_drips_times_out_within_the_deadline(http):
    # every byte arrives well within a per-read timeout: only a deadline for the whole fetch ends it
    started = time.monotonic()
    failed = failure(http.url("/drip"), timeout=QUICK, **LOCAL)
    assert failed.reason.startswith(f"timed out after {QUICK:g} s") and failed.retryable
    assert time.monotonic() - started < QUICK + 3


def test_a_document_larger_than_the_cap_is_refused(http):
    failed = failure(http.url("/big.csv"), max_bytes=64 * 1024, **LOCAL)
    assert failed.reason == f"document larger than 64 KB: {http.url('/big.csv')}" and not failed.retryable


def test_a_document_without_a_length_is_cut_off_at_the_cap(http):
    failed = failure(http.url("/endless"), max_bytes=1024 * 1024, **LOCAL)
    assert failed.reason.startswith("document larger than 1 MB")


def test_compressed_documents_are_decoded(http):
    assert fetch(Source(http.url("/gzip")), **LOCAL).body == CSV


def test_redirects_are_followed_with_credentials_to_the_same_origin(http):
    source = Source(http.url("/moved"), username="acme", password="p@ss:w/rd")
    assert fetch(source, **LOCAL).body == CSV


def test_credentials_are_not_sent_to_another_host(http):
    source = Source(http.url("/elsewhere"), username="acme", password="p@ss:w/rd")
    failed = failure(source, **LOCAL)
    assert failed.reason == f"HTTP 401 Unauthorized from http://localhost:{http.port}/stock.csv"
    assert "authorization" not in http.requests[-1][1]


@pytest.mark.parametrize(
    ("path", "address"), [("/to-private", "10.0.0.1 is a private or reserved address"), ("/to-metadata", "169.254.169.254 is a link-local address")]
)
def test_a_redirect_to_a_private_address_is_refused(http, path, address):
    failed = failure(http.url(path), **LOCAL)
    assert failed.reason.startswith("redirect to a private address refused: http://")
    assert address in failed.reason and not failed.retryable


def test_a_redirect_to_another_scheme_is_refused(http):
    assert "not http or https refused" in failure(http.url("/to-file"), **LOCAL).reason


def test_redirects_are_followed_at_most_five_times(http):
    before = len(http.requests)
    assert failure(http.url("/loop"), **LOCAL).reason == f"more than 5 redirects from {http.url('/loop')}"
    assert len(http.requests) - before == 6


def test_loopback_is_refused_unless_the_settings_allow_it(http):
    failed = failure(http.url("/open.csv"))
    assert failed.reason.startswith("fetching from a private address refused") and "loopback" in failed.reason
    assert not failed.retryable
    # the setting that lets webhooks reach a receiver on this machine lets feeds be fetched from it
    allowed = Settings(secret_key="x", webhook_allow_loopback=True)
    assert fetch(Source(http.url("/open.csv")), settings=allowed).body == CSV
    assert "private" in failure(http.url("/to-private"), settings=allowed).reason


def test_dns_failure_names_the_host():
    failed = failure("https://feed.example.invalid/stock.csv")
    assert failed.reason == "DNS lookup failed for host feed.example.invalid" and failed.retryable


def test_connection_refused_is_retried(http):
    closed = SilentServer()
    closed.stop()
    failed = failure(f"http://127.0.0.1:{closed.port}/stock.csv", **LOCAL)
    assert failed.reason == f"could not connect to http://127.0.0.1:{closed.port}/stock.csv (connection refused)"
    assert failed.retryable


def test_https_with_a_trusted_certificate(https, trusting):
    fetched = fetch(Source(https.url("/stock.csv")), tls_context=trusting, **LOCAL)
    assert fetched.body == CSV and fetched.etag == '"v1"'


def test_https_with_an_untrusted_certificate_is_refused(https):
    failed = failure(https.url("/stock.csv"), **LOCAL)
    assert failed.reason.startswith(f"TLS certificate verify failed for {https.url('/stock.csv')}")
    assert not failed.retryable


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "the source URL must start with http://, https://, ftp:// or ftps://"),
        ("gopher://example.com/x", "the source URL must start with http://, https://, ftp:// or ftps://"),
        ("http:///stock.csv", "the source URL has no host"),
        ("http://example.com:99999/x", "the source URL is not a valid URL (check the host and port)"),
        ("ftp://example.com/", "the source URL names a folder, not a file: ftp://example.com/"),
        ("ftp://example.com/a%0d%0aDELE%20b", "the source URL holds control characters (a line break?)"),
    ],
)
def test_urls_that_cannot_be_fetched(url, reason):
    assert failure(url).reason == reason and not failure(url).retryable
    with pytest.raises(Invalid) as caught:
        check_source(Source(url))
    assert [(e.field, e.message) for e in caught.value.errors] == [("source_url", reason)]


def test_secret_query_values_are_hidden():
    source = Source("https://u:pw@feeds.example.com/stock.xml?store=12&api_key=abc123&token=zzz")
    assert source.redacted() == "https://u@feeds.example.com/stock.xml?store=12&api_key=…&token=…"


# --- FTP and FTPS --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ftp(tmp_path_factory):
    server = SupplierFtp(tmp_path_factory.mktemp("ftp"))
    server.put("stock.csv", CSV, mtime=1_790_000_000)
    server.put("folder/more stock.csv", CSV)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ftps(tmp_path_factory, tls_files):
    server = SupplierFtp(tmp_path_factory.mktemp("ftps"), tls_files=tls_files)
    server.put("stock.csv", CSV)
    yield server
    server.stop()


def test_ftp_fetch_then_not_modified_until_the_file_changes(ftp):
    source = Source(ftp.url("stock.csv"), username=FTP_USER, password=FTP_PASSWORD)
    first = fetch(source, **LOCAL)
    assert first == Fetched(CSV, etag=f"size:{len(CSV)}", last_modified="20260921141320", content_type=None)
    assert fetch(source, etag=first.etag, last_modified=first.last_modified, **LOCAL) is NOT_MODIFIED
    changed = CSV + b"5012345678900,1.00,1\n"
    ftp.put("stock.csv", changed, mtime=1_790_000_060)
    try:
        assert fetch(source, etag=first.etag, last_modified=first.last_modified, **LOCAL).body == changed
    finally:
        ftp.put("stock.csv", CSV, mtime=1_790_000_000)


def test_ftp_same_time_but_another_size_is_fetched(ftp):
    source = Source(ftp.url("stock.csv"), username=FTP_USER, password=FTP_PASSWORD)
    fetched = fetch(source, etag="size:1", last_modified="20260921141320", **LOCAL)
    assert fetched.body == CSV


def test_ftp_credentials_in_the_url_and_a_path_in_a_folder(ftp):
    url = ftp.url("folder/more%20stock.csv", userinfo=f"{FTP_USER}:s3cret%3Ap%40ss")
    assert fetch(Source(url), **LOCAL).body == CSV


def test_ftp_login_failure(ftp):
    failed = failure(Source(ftp.url("stock.csv"), username=FTP_USER, password="guess"), **LOCAL)
    assert failed.reason == f"FTP 530 login incorrect for {ftp.url('stock.csv', userinfo=FTP_USER)}"
    assert not failed.retryable


def test_ftp_missing_file(ftp):
    failed = failure(Source(ftp.url("nothing.csv"), username=FTP_USER, password=FTP_PASSWORD), **LOCAL)
    assert failed.reason.startswith("FTP 550 ") and failed.reason.endswith(
        f"(file not found or not readable: {ftp.url('nothing.csv', userinfo=FTP_USER)})"
    )
    assert not failed.retryable


def test_ftp_size_cap(ftp):
    failed = failure(Source(ftp.url("stock.csv"), username=FTP_USER, password=FTP_PASSWORD), max_bytes=10, **LOCAL)
    assert failed.reason.startswith("document larger than 10 bytes")


def test_ftp_server_that_hangs_times_out():
    silent = SilentServer()
    try:
        started = time.monotonic()
        failed = failure(f"ftp://127.0.0.1:{silent.port}/stock.csv", timeout=QUICK, **LOCAL)
        assert failed.reason == f"timed out after {QUICK:g} s fetching ftp://127.0.0.1:{silent.port}/stock.csv"
        assert failed.retryable and time.monotonic() - started < QUICK + 3
    finally:
        silent.stop()


def test_ftp_server_that_drips_the_file_times_out(tmp_path):
    dripping = SupplierFtp(tmp_path, send_bytes_per_second=2048)
    try:
        dripping.put("stock.csv", CSV * 500)  # ~10 s at that pace
        started = time.monotonic()
        failed = failure(Source(dripping.url("stock.csv"), username=FTP_USER, password=FTP_PASSWORD), timeout=QUICK, **LOCAL)
        assert failed.reason.startswith(f"timed out after {QUICK:g} s fetching ftp://") and failed.retryable
        assert time.monotonic() - started < QUICK + 3
    finally:
        dripping.stop()


def test_ftp_on_a_private_address_is_refused():
    failed = failure("ftp://10.0.0.1/stock.csv", **LOCAL)
    assert failed.reason.startswith("fetching from a private address refused: ftp://10.0.0.1/stock.csv")


def test_ftps_with_explicit_tls(ftps, trusting):
    source = Source(ftps.url("stock.csv"), username=FTP_USER, password=FTP_PASSWORD)
    first = fetch(source, tls_context=trusting, **LOCAL)
    assert first.body == CSV and first.last_modified is not None
    assert fetch(source, etag=first.etag, last_modified=first.last_modified, tls_context=trusting, **LOCAL) is NOT_MODIFIED


def test_ftps_login_failure(ftps, trusting):
    failed = failure(Source(ftps.url("stock.csv"), username=FTP_USER, password="guess"), tls_context=trusting, **LOCAL)
    assert failed.reason.startswith("FTP 530 login incorrect")


def test_ftps_with_an_untrusted_certificate_is_refused(ftps):
    failed = failure(Source(ftps.url("stock.csv"), username=FTP_USER, password=FTP_PASSWORD), **LOCAL)
    assert failed.reason.startswith(f"TLS certificate verify failed for {ftps.url('stock.csv', userinfo=FTP_USER)}")
    assert not failed.retryable


def test_plain_ftp_to_a_server_requiring_tls_is_refused_clearly(ftps):
    failed = failure(Source(ftps.url("stock.csv").replace("ftps:", "ftp:"), username=FTP_USER, password=FTP_PASSWORD), **LOCAL)
    assert failed.reason.startswith("FTP 5") and not failed.retryable
