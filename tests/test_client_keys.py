"""Client encryption keys: selection, secret derivation, and jwks_uri fetched from a local server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings
from joserfc.jwk import ECKey, RSAKey

from django_jarm.client_keys import (
    _allowed_address,
    derive_secret_key,
    select_key,
    unreadable_key_problem,
)
from django_jarm.exceptions import ConfigurationError
from tests import rp
from tests.conftest import REDIRECT_URI

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


@pytest.mark.parametrize(
    ("keys", "alg", "chosen"),
    [
        ([{"kty": "RSA", "n": "x", "e": "AQAB", "kid": "a"}], "RSA-OAEP", "a"),
        (
            [{"kty": "RSA", "kid": "s", "use": "sig"}, {"kty": "RSA", "kid": "e", "use": "enc"}],
            "RSA-OAEP",
            "e",
        ),
        ([{"kty": "EC", "crv": "P-256", "kid": "ec"}, {"kty": "RSA", "kid": "rsa"}], "ECDH-ES", "ec"),
        (
            [{"kty": "OKP", "crv": "X25519", "kid": "x"}, {"kty": "OKP", "crv": "Ed25519", "kid": "ed"}],
            "ECDH-ES",
            "x",
        ),
        (
            [{"kty": "RSA", "kid": "1"}, {"kty": "RSA", "kid": "2", "alg": "RSA-OAEP-256"}],
            "RSA-OAEP-256",
            "2",
        ),
        ([{"kty": "RSA", "kid": "1", "alg": "RSA-OAEP"}, {"kty": "RSA", "kid": "2"}], "RSA-OAEP-256", "2"),
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
    ],
)
def test_private_addresses_are_refused(address, allowed):
    assert _allowed_address(address) is allowed


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
        for _ in range(4):
            assert answer_of(browser, app, authorize)["error"] == "server_error"
    assert jwks_server.hits["/jwks"] == 2  # the first fetch and one forced refresh


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
        assert time.monotonic() - started < 0.5  # the failure is cached: no second wait
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
    ],
    ids=["oversize", "not-json", "private-members", "not-a-jwk-set", "redirect", "http-error"],
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
