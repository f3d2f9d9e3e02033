"""The webhook sender (outbound.Sender): HTTP/1.1 with keep-alive, https with certificates
verified, the address rules on every new connection, one deadline per request. No database."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time

import pytest

from stockhub import outbound
from stockhub.gateways.ftp_tls import ensure_self_signed
from stockhub.settings import Settings

BODY = b'{"id":"evt_1"}'
HEADERS = b"content-type: application/json\r\nwebhook-id: evt_1\r\n"


class Answering:
    """A receiver on 127.0.0.1 (TLS when given a context) that reads each request and answers with
    `answer(request_number)`: bytes to send, then closes the connection if `close_after`."""

    def __init__(self, answer, tls: ssl.SSLContext | None = None, close_after: bool = False):
        self.answer, self.tls, self.close_after = answer, tls, close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/hooks?x=1"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                sock.sendall(self.answer(len(self.requests)))
                if self.close_after:
                    return
        except (OSError, ssl.SSLError, StopIteration):
            return
        finally:
            sock.close()

    def stop(self) -> None:
        self._listener.close()


def settings(**values) -> Settings:
    return Settings(**({"webhook_allow_loopback": True} | values))


def post(sender: outbound.Sender, url: str, total: float = 5.0) -> outbound.Reply:
    return asyncio.run(sender.post(url, HEADERS, BODY, total))


def posts(sender: outbound.Sender, url: str, count: int) -> list[outbound.Reply]:
    async def run():
        return [await sender.post(url, HEADERS, BODY, 5.0) for _ in range(count)]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return ensure_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server_tls(tls_files):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, tls_files))
    return context


def test_requests_share_a_kept_connection_and_carry_host_length_and_body():
    receiver = Answering(lambda n: b"HTTP/1.1 204 No Content\r\n\r\n")
    replies = posts(outbound.Sender(settings()), receiver.url(), 3)
    assert [r.status_code for r in replies] == [204, 204, 204] and receiver.connections == 1
    first = receiver.requests[0]
    assert first.startswith(b"POST /hooks?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{receiver.port}\r\n".encode() in first and b"content-length: 14\r\n" in first
    assert b"webhook-id: evt_1\r\n" in first and first.endswith(b"\r\n\r\n" + BODY)


def test_the_answer_excerpt_retry_after_and_a_chunked_body():
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in [b"a" * 700, b"b" * 700]) + b"0\r\n\r\n"
    receiver = Answering(lambda n: b"HTTP/1.1 429 Too Many\r\nRetry-After: 30\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    sender = outbound.Sender(settings())
    first, second = posts(sender, receiver.url(), 2)
    assert first.status_code == 429 and first.retry_after == "30"
    assert first.excerpt == b"a" * 700 + b"b" * 300 and len(first.excerpt) == outbound.EXCERPT_BYTES
    assert second.status_code == 429 and receiver.connections == 1  # the whole chunked body was read: kept


def test_a_connection_the_receiver_closed_is_replaced_once():
    receiver = Answering(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", close_after=True)
    replies = posts(outbound.Sender(settings()), receiver.url(), 3)
    assert [r.status_code for r in replies] == [200, 200, 200] and replies[0].excerpt == b"ok"
    assert len(receiver.requests) == 3  # each sent once


def test_https_with_a_trusted_certificate(tls_files, server_tls):
    receiver = Answering(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", tls=server_tls)
    sender = outbound.Sender(settings(), verify=ssl.create_default_context(cafile=str(tls_files[0])))
    assert [r.status_code for r in posts(sender, receiver.url("https"), 2)] == [200, 200] and receiver.connections == 1


def test_https_with_an_untrusted_certificate_is_refused(server_tls):
    receiver = Answering(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", tls=server_tls)
    with pytest.raises(outbound.RequestFailed, match="CERTIFICATE_VERIFY_FAILED"):
        post(outbound.Sender(settings()), receiver.url("https"))
    assert receiver.requests == []


def test_a_forbidden_address_is_refused_before_connecting():
    receiver = Answering(lambda n: b"HTTP/1.1 204 No Content\r\n\r\n")
    for url in (receiver.url(), f"http://localhost:{receiver.port}/hooks"):
        with pytest.raises(outbound.RequestFailed, match="refused: host .* resolves to .*loopback"):
            post(outbound.Sender(settings(webhook_allow_loopback=False)), url)
    assert receiver.connections == 0


def test_a_dripping_answer_ends_at_the_deadline():
    def drip(sock_answer_unused):
        return b""

    class Dripper(Answering):
        def _serve(self, sock):
            with sock:
                sock.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nx-padding: " + b"a" * 10_000:
                    try:
                        sock.sendall(bytes([byte]))
                    except OSError:
                        return
                    time.sleep(0.05)

    receiver = Dripper(drip)
    started = time.monotonic()
    with pytest.raises(outbound.RequestTimedOut, match="no complete answer within 0.5 s"):
        post(outbound.Sender(settings()), receiver.url(), total=0.5)
    assert time.monotonic() - started < 1.5


def test_a_url_with_a_space_a_line_break_or_a_letter_beyond_ascii_is_sent_percent_encoded():
    receiver = Answering(lambda n: b"HTTP/1.1 204 No Content\r\n\r\n")
    reply = post(outbound.Sender(settings()), f"http://127.0.0.1:{receiver.port}/hooks/caf\u00e9 x\r\nx-injected: 1?q=a b")
    assert reply.status_code == 204
    head = receiver.requests[0].split(b"\r\n\r\n")[0]
    assert head.startswith(b"POST /hooks/caf%C3%A9%20xx-injected:%201?q=a%20b HTTP/1.1\r\n")  # line breaks dropped (urlsplit)
    assert b"\r\nx-injected" not in head


def test_a_negative_chunk_size_is_a_protocol_error():
    receiver = Answering(lambda n: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n")
    with pytest.raises(outbound.RequestFailed, match="bad chunk size"):
        post(outbound.Sender(settings()), receiver.url())
