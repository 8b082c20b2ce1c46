"""Client encryption keys: selection, secret derivation, and jwks_uri fetched from a local server."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from joserfc.jwk import ECKey, OKPKey, RSAKey

from django_jarm import client_keys
from django_jarm.client_keys import _allowed_address, derive_secret_key, fetch_client_jwks
from django_jarm.exceptions import ConfigurationError
from django_jarm.validation import jwks_keys_problem as unreadable_key_problem
from django_jarm.validation import public_key_problem, select_key
from tests import rp
from tests.conftest import REDIRECT_URI

pytestmark = pytest.mark.django_db  # fetched sets live in the state snapshot, which reads the version row

LOCAL = {
    "CLIENT_JWKS_ALLOW_HTTP": True,
    "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": True,
    "CLIENT_JWKS_TIMEOUT": 0.5,
}


class JWKSServer:
    """A local HTTP server whose answers the test sets per path; counts the requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                status, headers, body, delay = server.routes.get(self.path, (404, {}, b"", 0.0))
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def serve(
        self,
        path: str,
        body: Any,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay: float = 0,
    ) -> str:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[path] = (status, headers or {"Content-Type": "application/json"}, raw, delay)
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class TricklingServer:
    """Answers every request one byte every ``interval`` seconds: the headers, or the body."""

    def __init__(self, *, trickle: str, interval: float = 0.5, duration: float = 15.0) -> None:
        self.trickle = trickle
        self.interval = interval
        self.duration = duration
        self.hits = 0
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/jwks") -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}{path}"

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        body = json.dumps(public(RSAKey.generate_key(2048))).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        with connection, contextlib.suppress(OSError):
            connection.settimeout(5)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                received += chunk
            with self.lock:
                self.hits += 1
            if self.trickle == "body":
                connection.sendall(head.encode())
                slow = body
            else:
                slow = head.encode() + body
            stop = time.monotonic() + self.duration
            for byte in slow:
                if self.closed.is_set() or time.monotonic() > stop:
                    return
                connection.sendall(bytes([byte]))
                time.sleep(self.interval)

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.fixture
def trickling_server() -> Iterator[Any]:
    servers: list[TricklingServer] = []

    def start(trickle: str) -> TricklingServer:
        servers.append(TricklingServer(trickle=trickle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    yield server
    server.close()


def public(*keys: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def encrypted_app(make_app: Any, uri: str, alg: str = "RSA-OAEP-256") -> Any:
    return make_app("code", jarm={"authorization_encrypted_response_alg": alg, "jwks_uri": uri})


def answer_of(browser: Any, app: Any, authorize: Any) -> dict[str, str]:
    response, _, _ = authorize(browser, app, "code", "jwt")
    return dict(rp.delivery_of(response, REDIRECT_URI).params)


# Unit ------------------------------------------------------------------------------------


def test_secret_derivation_follows_openid_connect_core_10_2():
    secret = "s3cr3t"
    sha256 = hashlib.sha256(secret.encode()).digest()
    assert derive_secret_key(secret, "A128KW", "A128GCM") == sha256[:16]
    assert derive_secret_key(secret, "A192GCMKW", "A128GCM") == sha256[:24]
    assert derive_secret_key(secret, "dir", "A128CBC-HS256") == sha256
    assert derive_secret_key(secret, "dir", "A128GCM") == sha256[:16]
    assert derive_secret_key(secret, "dir", "A192CBC-HS384") == hashlib.sha384(secret.encode()).digest()
    assert derive_secret_key(secret, "dir", "A256CBC-HS512") == hashlib.sha512(secret.encode()).digest()


_RSA = RSAKey.generate_key(2048).as_dict(private=False)
_EC = ECKey.generate_key("P-256").as_dict(private=False)
_X25519 = OKPKey.generate_key("X25519").as_dict(private=False)
_ED25519 = OKPKey.generate_key("Ed25519").as_dict(private=False)


def real(public: dict[str, Any], **members: Any) -> dict[str, Any]:
    """A real public key with the given extra members."""
    return {**public, **members}


@pytest.mark.parametrize(
    ("keys", "alg", "chosen"),
    [
        ([real(_RSA, kid="a")], "RSA-OAEP", "a"),
        ([real(_RSA, kid="s", use="sig"), real(_RSA, kid="e", use="enc")], "RSA-OAEP", "e"),
        ([real(_EC, kid="ec"), real(_RSA, kid="rsa")], "ECDH-ES", "ec"),
        ([real(_X25519, kid="x"), real(_ED25519, kid="ed")], "ECDH-ES", "x"),
        ([real(_RSA, kid="1"), real(_RSA, kid="2", alg="RSA-OAEP-256")], "RSA-OAEP-256", "2"),
        ([real(_RSA, kid="1", alg="RSA-OAEP"), real(_RSA, kid="2")], "RSA-OAEP-256", "2"),
    ],
)
def test_key_selection(keys, alg, chosen):
    assert select_key({"keys": keys}, alg)["kid"] == chosen


@pytest.mark.parametrize(
    ("keys", "alg"),
    [
        ([], "RSA-OAEP"),
        ([{"kty": "RSA", "kid": "1"}, {"kty": "RSA", "kid": "2"}], "RSA-OAEP"),
        ([{"kty": "EC", "crv": "P-256"}], "RSA-OAEP"),  # an RSA algorithm with only an EC key
        ([{"kty": "RSA", "use": "sig"}], "RSA-OAEP"),
        ([{"kty": "RSA", "key_ops": ["verify"]}], "RSA-OAEP"),
    ],
    ids=["empty", "ambiguous", "wrong-type", "signing-key", "wrong-ops"],
)
def test_key_selection_failures(keys, alg):
    with pytest.raises(ConfigurationError):
        select_key({"keys": keys}, alg)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.215.14", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        # IPv6 forms that embed an IPv4 address: refused when that address is not global.
        ("64:ff9b::127.0.0.1", False),  # NAT64 (RFC 6052)
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b::169.254.169.254", False),
        ("64:ff9b::93.184.215.14", True),
        ("64:ff9b:1::93.184.215.14", False),  # local-use NAT64 (RFC 8215)
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1 (RFC 3056)
        ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2002:5db8:d70e::1", True),  # 6to4 of 93.184.215.14
        ("::127.0.0.1", False),  # IPv4-compatible (RFC 4291 2.5.5.1)
        ("::10.0.0.1", False),
        ("::93.184.215.14", False),  # reserved range even with a public IPv4
        ("::ffff:0:127.0.0.1", False),  # IPv4-translated (RFC 2765)
        ("::ffff:0:10.0.0.1", False),
        ("::ffff:10.0.0.1", False),  # IPv4-mapped
        ("::ffff:93.184.215.14", True),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
        ("2001:0:c0a8:101:8000:63bf:a247:28f1", False),  # Teredo, server 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:a247:28f1", False),  # Teredo: not globally routable at all
        ("not an address", False),
    ],
)
def test_private_addresses_are_refused(address, allowed):
    assert _allowed_address(address) is allowed


def test_allowing_private_addresses_allows_every_form():
    with override_settings(JARM={"CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": True}):
        assert _allowed_address("64:ff9b::127.0.0.1") is True


# jwks_uri end to end -------------------------------------------------------------------------


@pytest.mark.django_db
def test_fetched_once_for_many_responses(jwks_server, browser, make_app, authorize, jwks, discovery):
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "enc"})
    app = encrypted_app(make_app, jwks_server.serve("/jwks", public(key)))
    with override_settings(JARM=LOCAL):
        for _ in range(5):
            response, _, _ = authorize(browser, app, "code", "jwt")
            token = rp.jwt_of(rp.delivery_of(response, REDIRECT_URI))
            header, inner = rp.decrypt_response(token, key, alg="RSA-OAEP-256", enc="A128CBC-HS256")
            assert header["kid"] == "k1"
            rp.verify_response(inner, jwks=jwks(), issuer=discovery()["issuer"], client_id=app.client_id)
    assert jwks_server.hits["/jwks"] == 1


@pytest.mark.django_db
def test_client_key_rotation_costs_one_refresh(jwks_server, browser, make_app, authorize):
    rsa = RSAKey.generate_key(2048)
    uri = jwks_server.serve("/jwks", public(rsa))
    app = encrypted_app(make_app, uri)
    with override_settings(JARM=LOCAL):
        assert list(answer_of(browser, app, authorize)) == ["response"]
        # The client rotates to an EC key and the operator switches the algorithm.
        ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
        jwks_server.serve("/jwks", public(ec))
        app.jarm.authorization_encrypted_response_alg = "ECDH-ES"
        app.jarm.save()
        response, _, _ = authorize(browser, app, "code", "jwt")
        token = rp.jwt_of(rp.delivery_of(response, REDIRECT_URI))
        assert rp.decrypt_response(token, ec, alg="ECDH-ES", enc="A128CBC-HS256")[0]["kid"] == "ec-1"
        assert list(answer_of(browser, app, authorize)) == ["response"]
    assert jwks_server.hits["/jwks"] == 2


@pytest.mark.django_db
def test_refresh_is_rate_limited(jwks_server, browser, make_app, authorize):
    uri = jwks_server.serve("/jwks", public(ECKey.generate_key("P-256")))
    app = encrypted_app(make_app, uri, alg="RSA-OAEP")  # never a fitting key
    with override_settings(JARM=LOCAL):
        assert answer_of(browser, app, authorize)["error"] == "server_error"
        # A set fetched just now is not fetched again at once: one wait per request, at most.
        assert jwks_server.hits["/jwks"] == 1
        for _ in range(3):
            assert answer_of(browser, app, authorize)["error"] == "server_error"
    assert jwks_server.hits["/jwks"] == 2  # the first fetch and one forced refresh of the kept set


@pytest.mark.django_db
def test_timeout_costs_one_client_and_is_remembered(jwks_server, browser, make_app, authorize):
    slow = encrypted_app(make_app, jwks_server.serve("/slow", public(RSAKey.generate_key(2048)), delay=3))
    healthy = make_app("code")
    with override_settings(JARM=LOCAL):
        started = time.monotonic()
        assert answer_of(browser, slow, authorize)["error"] == "server_error"
        assert time.monotonic() - started < 2.5
        started = time.monotonic()
        assert answer_of(browser, slow, authorize)["error"] == "server_error"
        assert time.monotonic() - started < 1.5  # within the deadline (0.5 s) + margin
        assert list(answer_of(browser, healthy, authorize)) == ["response"]
    assert jwks_server.hits["/slow"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "status", "headers"),
    [
        (b"{" + b" " * 70_000 + b"}", 200, None),  # over CLIENT_JWKS_MAX_BYTES
        (b"<html>not json</html>", 200, {"Content-Type": "text/html"}),
        (b'{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB", "d": "secret"}]}', 200, None),
        (b'{"keys": "nope"}', 200, None),
        (b"", 302, {"Location": "/jwks"}),
        (b"{}", 500, None),
        (b"[" * 60_000, 200, None),
        (b"HTTP/1.1 200 OK", 200, {"X-Padding": "x" * 70_000}),
    ],
    ids=[
        "oversize",
        "not-json",
        "private-members",
        "not-a-jwk-set",
        "redirect",
        "http-error",
        "deep-nesting",
        "oversize-header",
    ],
)
def test_bad_answers_are_server_errors(jwks_server, browser, make_app, authorize, body, status, headers):
    jwks_server.serve("/jwks", public(RSAKey.generate_key(2048)))
    app = encrypted_app(make_app, jwks_server.serve("/bad", body, status=status, headers=headers))
    with override_settings(JARM=LOCAL):
        params = answer_of(browser, app, authorize)
    assert params["error"] == "server_error"
    assert set(params) == {"error", "error_description", "state"}
    assert jwks_server.hits["/jwks"] == 0  # redirects are not followed


@pytest.mark.django_db
@pytest.mark.parametrize(
    "settings",
    [
        {**LOCAL, "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": False},
        {**LOCAL, "CLIENT_JWKS_ALLOW_HTTP": False},
    ],
    ids=["private-address", "http"],
)
def test_refused_before_any_connection(jwks_server, browser, make_app, authorize, settings):
    app = encrypted_app(make_app, jwks_server.serve("/jwks", public(RSAKey.generate_key(2048))))
    with override_settings(JARM=settings):
        assert answer_of(browser, app, authorize)["error"] == "server_error"
    assert jwks_server.hits["/jwks"] == 0


@pytest.mark.django_db
def test_unresolvable_host(browser, make_app, authorize):
    app = encrypted_app(make_app, "https://jwks.invalid/keys")
    with override_settings(JARM=LOCAL):
        assert answer_of(browser, app, authorize)["error"] == "server_error"


def test_unreadable_key_problem_names_the_key():
    good = RSAKey.generate_key(2048, parameters={"kid": "good"}).as_dict(private=False)
    assert unreadable_key_problem({"keys": [good]}) == ""
    assert "'broken'" in unreadable_key_problem({"keys": [good, {"kty": "EC", "kid": "broken", "crv": "P-256"}]})


# Hostile jwks_uri servers ----------------------------------------------------------------------


@pytest.mark.parametrize("trickle", ["headers", "body"])
def test_the_deadline_holds_against_a_trickling_server(trickling_server, trickle):
    server = trickling_server(trickle)
    with override_settings(JARM={**LOCAL, "CLIENT_JWKS_TIMEOUT": 1.0}):
        started = time.monotonic()
        with pytest.raises(ConfigurationError, match="too slowly"):
            fetch_client_jwks(server.url())
        elapsed = time.monotonic() - started
    assert elapsed < 2.0  # the deadline (1 s) + 1 s of scheduling margin on a busy machine
    assert server.hits == 1


def test_name_resolution_is_bounded_by_the_deadline(monkeypatch):
    release = threading.Event()

    def hanging_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        raise OSError("released")

    monkeypatch.setattr(client_keys.socket, "getaddrinfo", hanging_getaddrinfo)
    try:
        with override_settings(JARM={**LOCAL, "CLIENT_JWKS_TIMEOUT": 0.5}):
            started = time.monotonic()
            with pytest.raises(ConfigurationError, match="too slowly"):
                fetch_client_jwks("http://jwks.example/keys")
            assert time.monotonic() - started < 1.5  # 0.5 s + margin; the resolver hangs for 10 s
    finally:
        release.set()


def test_concurrent_fetches_are_bounded_and_the_overflow_is_not_remembered(trickling_server):
    server = trickling_server("headers")
    urls = [server.url(f"/jwks/{n}") for n in range(client_keys.MAX_CONCURRENT_FETCHES + 1)]
    errors: list[str] = []
    with override_settings(JARM={**LOCAL, "CLIENT_JWKS_TIMEOUT": 1.5}):

        def fetch(url: str) -> None:
            try:
                fetch_client_jwks(url)
            except ConfigurationError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=fetch, args=(url,)) for url in urls[:-1]]
        for thread in threads:
            thread.start()
        while server.hits < len(threads):
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(client_keys.FetchesBusy):
            fetch_client_jwks(urls[-1])
        assert time.monotonic() - started < 0.75  # refused at once, not queued behind the 1.5 s fetches
        for thread in threads:
            thread.join()
        # The refused URL was never tried, so its next request fetches it.
        server.trickle = "none"
        server.interval = 0
        assert fetch_client_jwks(urls[-1])["keys"][0]["kty"] == "RSA"
    assert errors == ["The jwks_uri answered too slowly."] * len(threads)
    assert server.hits == len(urls)


@pytest.mark.skipif(
    "sqlite" in django_settings.DATABASES["default"]["ENGINE"],
    reason="eight server threads at once need a database each thread can use (PostgreSQL: CI step 6b runs it); "
    "one shared in-memory SQLite connection is not safe for that",
)
@pytest.mark.django_db(transaction=True)
def test_parallel_requests_share_one_bounded_fetch(http_server, trickling_server, make_app):
    """8 parallel anonymous prompt=none requests over HTTP while the client's jwks_uri trickles."""
    server = trickling_server("headers")
    app = encrypted_app(make_app, server.url())
    timeout = 1.0
    answers: list[tuple[float, int, str]] = []
    lock = threading.Lock()
    query = (
        f"/o/authorize/?client_id={app.client_id}&response_type=code&response_mode=jwt&prompt=none"
        f"&redirect_uri={REDIRECT_URI}&scope=openid&state=s-1&code_challenge={'a' * 43}&code_challenge_method=S256"
    )
    host, port = http_server

    def request() -> None:
        started = time.monotonic()
        connection = http.client.HTTPConnection(host, port, timeout=20)
        connection.request("GET", query)
        response = connection.getresponse()
        response.read()
        with lock:
            answers.append((time.monotonic() - started, response.status, response.getheader("Location") or ""))
        connection.close()

    with override_settings(JARM={**LOCAL, "CLIENT_JWKS_TIMEOUT": timeout}):
        threads = [threading.Thread(target=request) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(answers) == 8
    for elapsed, status, location in answers:
        assert status == 302
        assert location.startswith(REDIRECT_URI + "?error=server_error&")
        assert elapsed < timeout + 1
    assert server.hits == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "uri",
    ["https://rp.example:99999/jwks", "https://[::1/jwks", "https://u:p@rp.example/jwks", "https://rp.example/#k"],
)
def test_an_unusable_jwks_uri_saved_without_clean_is_a_server_error(browser, make_app, authorize, uri):
    app = encrypted_app(make_app, uri)  # a row written without clean(), as a data migration could
    for _ in range(2):  # fetched (refused before any connection), then answered from the failure cache
        params = answer_of(browser, app, authorize)
        assert params["error"] == "server_error"
        assert set(params) == {"error", "error_description", "state"}


# Key strength and usability ---------------------------------------------------------------------


def _b64(number: int, length: int | None = None) -> str:
    import base64

    raw = number.to_bytes(length or (number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _rsa_public(bits: int, **members: Any) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa

    numbers = crypto_rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key().public_numbers()
    return {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e), **members}


def _ec_off_curve() -> dict[str, Any]:
    key = ECKey.generate_key("P-256").as_dict(private=False)
    return {**key, "y": key["x"], "kid": "off-curve"}


WEAK_OR_BROKEN_KEYS = [
    pytest.param(lambda: _rsa_public(1024, kid="rsa-1024"), "RSA-OAEP", "is a 1024-bit RSA key", id="rsa-1024"),
    pytest.param(lambda: _rsa_public(1536), "RSA-OAEP-256", "is a 1536-bit RSA key", id="rsa-1536"),
    pytest.param(
        lambda: {**_RSA, "n": _b64((1 << 16400) + 1)}, "RSA-OAEP", "at most 16384 bits are accepted", id="rsa-huge"
    ),
    pytest.param(lambda: {**_RSA, "e": "Ag"}, "RSA-OAEP", "is not a valid RSA public key", id="rsa-even-exponent"),
    pytest.param(lambda: {**_RSA, "e": "AQ"}, "RSA-OAEP", "is not a valid RSA public key", id="rsa-exponent-1"),
    pytest.param(lambda: {**_RSA, "n": _RSA["n"][:-2] + "AA"}, "RSA-OAEP", "not a valid RSA", id="rsa-even-modulus"),
    pytest.param(_ec_off_curve, "ECDH-ES", "its point must lie on its curve", id="ec-off-curve"),
    pytest.param(lambda: {**_EC, "x": _EC["x"][:-4]}, "ECDH-ES+A128KW", "wrong length for P-256", id="ec-short-x"),
    pytest.param(lambda: {**_EC, "x": "!" * 43}, "ECDH-ES", "not a valid EC public key", id="ec-not-base64url"),
    pytest.param(
        lambda: {**_EC, "crv": "P-384"}, "ECDH-ES", "wrong length for P-384", id="ec-coordinates-of-another-curve"
    ),
    pytest.param(lambda: {**_X25519, "x": _b64(5, 31)}, "ECDH-ES", "wrong length for X25519", id="x25519-31-octets"),
    pytest.param(lambda: {**_X25519, "x": ""}, "ECDH-ES", "not a valid OKP public key", id="x25519-empty"),
]


@pytest.mark.parametrize(("make_key", "alg", "message"), WEAK_OR_BROKEN_KEYS)
def test_public_key_problem(make_key, alg, message):
    key = make_key()
    assert message in public_key_problem(key)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        select_key({"keys": [key]}, alg)


@pytest.mark.parametrize(
    "key",
    [
        _RSA,
        _EC,
        _X25519,
        _ED25519,
        ECKey.generate_key("P-521").as_dict(private=False),
        ECKey.generate_key("secp256k1").as_dict(private=False),  # not an encryption curve: never chosen
        {"kty": "unknown"},
    ],
    ids=["rsa-2048", "p-256", "x25519", "ed25519", "p-521", "secp256k1", "unknown-kty"],
)
def test_usable_keys_have_no_problem(key):
    assert public_key_problem(key) == ""


@pytest.mark.django_db
@pytest.mark.parametrize(("make_key", "alg", "message"), WEAK_OR_BROKEN_KEYS)
def test_weak_or_broken_keys_are_refused_by_clean(make_app, make_key, alg, message):
    from django.core.exceptions import ValidationError

    from django_jarm.models import ClientSettings

    row = ClientSettings(
        application=make_app("code"),
        authorization_encrypted_response_alg=alg,
        jwks={"keys": [make_key(), real(_EC, kid="good-one", alg="ECDH-ES+A256KW")]},
    )
    with pytest.raises(ValidationError) as excinfo:
        row.full_clean()
    assert list(excinfo.value.message_dict) == ["jwks"]
    assert message in excinfo.value.message_dict["jwks"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(("make_key", "alg", "message"), WEAK_OR_BROKEN_KEYS)
def test_weak_or_broken_keys_stored_without_clean_fail_before_any_code(
    browser, make_app, authorize, make_key, alg, message
):
    from oauth2_provider.models import get_access_token_model, get_grant_model

    app = make_app("code token", jarm={"authorization_encrypted_response_alg": alg, "jwks": {"keys": [make_key()]}})
    response, _, _ = authorize(browser, app, "code token", "jwt")
    params = dict(rp.delivery_of(response, REDIRECT_URI).params)
    assert params["error"] == "server_error"
    assert set(params) == {"error", "error_description", "state"}
    assert not get_grant_model().objects.exists()  # refused before a code (or token) was issued
    assert not get_access_token_model().objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("make_key", "alg", "message"), WEAK_OR_BROKEN_KEYS)
def test_weak_or_broken_keys_at_a_jwks_uri_are_refused(
    jwks_server, browser, make_app, authorize, make_key, alg, message
):
    from oauth2_provider.models import get_grant_model

    uri = jwks_server.serve("/jwks", {"keys": [make_key()]})
    app = encrypted_app(make_app, uri, alg=alg)
    with override_settings(JARM=LOCAL):
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            fetch_client_jwks(uri)
        assert answer_of(browser, app, authorize)["error"] == "server_error"
    assert not get_grant_model().objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (RSAKey.generate_key(2048, parameters={"key_ops": ["encrypt"]}), "RSA-OAEP-256"),
        (ECKey.generate_key("P-256", parameters={"key_ops": ["deriveKey"]}), "ECDH-ES"),
        (OKPKey.generate_key("X25519", parameters={"key_ops": ["deriveKey"]}), "ECDH-ES+A128KW"),
    ],
    ids=["rsa-encrypt", "ec-deriveKey", "x25519-deriveKey"],
)
def test_keys_limited_to_other_encryption_operations_are_used(browser, make_app, authorize, jwks, discovery, key, alg):
    """RFC 7517 4.3: a key whose key_ops name "encrypt" or "deriveKey" (not "wrapKey") still receives the JWE."""
    app = make_app("code", jarm={"authorization_encrypted_response_alg": alg, "jwks": public(key)})
    response, _, _ = authorize(browser, app, "code", "jwt")
    token = rp.jwt_of(rp.delivery_of(response, REDIRECT_URI))
    private = {member: value for member, value in key.as_dict(private=True).items() if member != "key_ops"}
    _, inner = rp.decrypt_response(token, type(key).import_key(private), alg=alg, enc="A128CBC-HS256")
    claims = rp.verify_response(inner, jwks=jwks(), issuer=discovery()["issuer"], client_id=app.client_id)
    assert "code" in claims.params


# The key chosen from a stored JWK Set, once per snapshot ------------------------------------


def _inline_settings(make_app: Any, jwks: dict[str, Any]) -> tuple[Any, Any]:
    app = make_app("code", jarm={"authorization_encrypted_response_alg": "RSA-OAEP-256", "jwks": jwks})
    return app, app.jarm.metadata()


def _rsa_set(kid: str) -> dict[str, Any]:
    return {"keys": [{**RSAKey.generate_key(2048).as_dict(private=False), "kid": kid, "use": "enc"}]}


def test_the_inline_key_is_chosen_once_for_the_same_set(make_app, monkeypatch):
    app, metadata = _inline_settings(make_app, _rsa_set("rp-1"))
    imports = []
    real_import = client_keys._import_public
    monkeypatch.setattr(client_keys, "_import_public", lambda key: imports.append(key["kid"]) or real_import(key))
    first = client_keys.get_encryption_key(app, metadata)
    assert client_keys.get_encryption_key(app, metadata) is first
    assert imports == ["rp-1"]
    assert (first.alg, first.enc, first.kid) == ("RSA-OAEP-256", "A128CBC-HS256", "rp-1")


def test_another_set_for_the_same_client_is_chosen_afresh(make_app):
    app, metadata = _inline_settings(make_app, _rsa_set("rp-1"))
    assert client_keys.get_encryption_key(app, metadata).kid == "rp-1"
    # An unsaved form's set (say): another object, another key.
    other = dataclasses.replace(metadata, jwks=_rsa_set("rp-2"))
    assert client_keys.get_encryption_key(app, other).kid == "rp-2"
    assert client_keys.get_encryption_key(app, metadata).kid == "rp-1"


def test_each_client_and_algorithm_has_its_own_inline_key(make_app):
    one, one_metadata = _inline_settings(make_app, _rsa_set("rp-1"))
    two, two_metadata = _inline_settings(make_app, _rsa_set("rp-2"))
    assert client_keys.get_encryption_key(one, one_metadata).kid == "rp-1"
    assert client_keys.get_encryption_key(two, two_metadata).kid == "rp-2"
    oaep = dataclasses.replace(one_metadata, authorization_encrypted_response_alg="RSA-OAEP")
    chosen = client_keys.get_encryption_key(one, oaep)
    assert (chosen.alg, chosen.kid) == ("RSA-OAEP", "rp-1")
    assert client_keys.get_encryption_key(one, one_metadata).alg == "RSA-OAEP-256"


def _counting_choices(monkeypatch: Any) -> list[str]:
    chosen: list[str] = []
    real = client_keys.get_encryption_key

    def counted(application: Any, metadata: Any) -> Any:
        chosen.append(application.client_id)
        return real(application, metadata)

    monkeypatch.setattr(client_keys, "get_encryption_key", counted)
    return chosen


def test_the_stored_rows_key_is_kept_with_the_row(make_app, monkeypatch):
    app, _ = _inline_settings(make_app, _rsa_set("rp-1"))
    chosen = _counting_choices(monkeypatch)
    row = app.jarm
    first = client_keys.settings_encryption_key(app, row)
    assert client_keys.settings_encryption_key(app, row) is first
    assert first.kid == "rp-1"
    assert chosen == [app.client_id]
    # Another object for the same client (the row as saved again, or reloaded): chosen afresh.
    reloaded = type(row).objects.get(pk=row.pk)
    reloaded.jwks = _rsa_set("rp-2")
    assert client_keys.settings_encryption_key(app, reloaded).kid == "rp-2"
    assert chosen == [app.client_id] * 2


def test_the_kept_key_follows_the_rows_values_and_the_enabled_algorithms(make_app, monkeypatch):
    app, _ = _inline_settings(make_app, _rsa_set("rp-1"))
    row = app.jarm
    assert client_keys.settings_encryption_key(app, row).alg == "RSA-OAEP-256"
    # Values changed in place on the same row object: chosen afresh.
    row.authorization_encrypted_response_alg = "RSA-OAEP"
    assert client_keys.settings_encryption_key(app, row).alg == "RSA-OAEP"
    row.authorization_encrypted_response_enc = "A256GCM"
    assert client_keys.settings_encryption_key(app, row).enc == "A256GCM"
    row.jwks = _rsa_set("rp-2")
    assert client_keys.settings_encryption_key(app, row).kid == "rp-2"
    # A JARM dict that no longer enables the algorithm, swapped in without a settings signal.
    monkeypatch.setattr(django_settings, "JARM", {"ENCRYPTION_ALGS_SUPPORTED": ["ECDH-ES"]}, raising=False)
    with pytest.raises(client_keys.KeyUnavailable, match="RSA-OAEP is not enabled"):
        client_keys.settings_encryption_key(app, row)
    monkeypatch.setattr(django_settings, "JARM", {"ENCRYPTION_ENCS_SUPPORTED": ["A128GCM"]}, raising=False)
    with pytest.raises(client_keys.KeyUnavailable, match="A256GCM is not enabled"):
        client_keys.settings_encryption_key(app, row)


@pytest.mark.parametrize(
    "jarm",
    [
        {"authorization_encrypted_response_alg": "A128KW"},  # from the client secret, which may change
        {"authorization_encrypted_response_alg": "RSA-OAEP-256", "jwks_uri": "https://rp.example/jwks"},
    ],
    ids=["secret-derived", "jwks_uri"],
)
def test_keys_not_from_the_rows_own_set_are_chosen_for_every_response(make_app, monkeypatch, jarm):
    app = make_app("code", client_secret="s" * 64, hash_client_secret=False, jarm=jarm)
    chosen = _counting_choices(monkeypatch)
    if "jwks_uri" in jarm:
        key = public(RSAKey.generate_key(2048))["keys"][0]
        monkeypatch.setattr(client_keys, "_select_from_uri", lambda uri, alg: key)
    for _ in range(3):
        client_keys.settings_encryption_key(app, app.jarm)
    assert chosen == [app.client_id] * 3


def test_a_malformed_set_saved_without_clean_names_its_problem(make_app):
    app, metadata = _inline_settings(make_app, _rsa_set("rp-1"))
    broken = dataclasses.replace(metadata, jwks={"keys": "not a list"})
    with pytest.raises(client_keys.KeyUnavailable, match=r'^A JWK Set is a JSON object with a "keys" list\.$'):
        client_keys.get_encryption_key(app, broken)


def test_no_secret_derived_key_for_public_key_algorithms():
    with pytest.raises(client_keys.KeyUnavailable, match=r"^No secret-derived key exists for RSA-OAEP/A128GCM\.$"):
        derive_secret_key("s" * 64, "RSA-OAEP", "A128GCM")
