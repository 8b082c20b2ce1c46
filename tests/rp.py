"""A relying party's side of JARM, written with joserfc only (never with django_jarm's code).

It extracts the ``response`` JWT from whatever the authorization endpoint answered and checks
it as JARM 2.4 tells a client to: iss, aud, exp, then the signature against the server's JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, OctKey

ALL_JWS_ALGS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
    "HS256",
    "HS384",
    "HS512",
]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attributes.get("action"), "method": attributes.get("method"), "inputs": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append((attributes.get("name"), attributes.get("value")))
        elif tag == "script":
            self.scripts.append(attributes)


def parse_form_post(html: str) -> tuple[str, str, list[tuple[str, str]], list[dict[str, str | None]]]:
    parser = _FormParser()
    parser.feed(html)
    assert len(parser.forms) == 1, "exactly one form"
    form = parser.forms[0]
    return form["action"], form["method"], [(n, v) for n, v in form["inputs"] if n], parser.scripts


@dataclass
class Delivery:
    """Where and how the response parameters arrived."""

    mode: str  # "query", "fragment" or "form_post"
    target: str  # redirect URI (without the response parameters)
    params: list[tuple[str, str]]
    status: int
    headers: dict[str, str] = field(default_factory=dict)


def delivery_of(response: Any, redirect_uri: str) -> Delivery:
    """Read an authorization endpoint's answer like a browser would."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    if response.status_code in (302, 303):
        location = response["Location"]
        parts = urlsplit(location)
        own = parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)
        query = parse_qsl(parts.query, keep_blank_values=True)
        fragment = parse_qsl(parts.fragment, keep_blank_values=True)
        assert location.startswith(redirect_uri.split("?")[0]), location
        for pair in own:
            assert pair in query, f"the redirect URI's own query parameter {pair} was lost"
            query.remove(pair)
        if fragment:
            assert not query, f"parameters in both query and fragment: {query} / {fragment}"
            return Delivery("fragment", redirect_uri, fragment, response.status_code, headers)
        return Delivery("query", redirect_uri, query, response.status_code, headers)
    assert response.status_code == 200, response.status_code
    assert headers["content-type"].startswith("text/html")
    action, method, inputs, _ = parse_form_post(response.content.decode())
    assert method == "post"
    return Delivery("form_post", action, inputs, response.status_code, headers)


def jwt_of(delivery: Delivery) -> str:
    """The single ``response`` parameter; nothing else may travel outside the JWT."""
    names = [name for name, _ in delivery.params]
    assert names == ["response"], f"parameters outside the JWT: {names}"
    return delivery.params[0][1]


@dataclass
class VerifiedResponse:
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        """The authorization response: the claims minus the JWT's own (keeps ``iss``)."""
        return {k: v for k, v in self.claims.items() if k not in {"aud", "exp", "iat", "nbf", "jti", "sub"}}


def verify_response(
    token: str,
    *,
    jwks: dict[str, Any],
    issuer: str,
    client_id: str,
    client_secret: str | None = None,
    leeway: int = 5,
) -> VerifiedResponse:
    """JARM 2.4 steps 2-5 with joserfc."""
    header_segment = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    assert header.get("alg") not in (None, "none")
    assert header.get("kid"), "JARM JWS without kid"
    if header["alg"].startswith("HS"):
        assert client_secret is not None
        key: Any = OctKey.import_key(client_secret.encode())
    else:
        matching = [k for k in jwks["keys"] if k.get("kid") == header["kid"]]
        assert len(matching) == 1, f"kid {header['kid']} matches {len(matching)} keys in the JWKS"
        key = KeySet.import_key_set(jwks)
    decoded = jwt.decode(token, key, algorithms=[header["alg"]])
    claims = decoded.claims
    now = int(time.time())
    assert claims["iss"] == issuer
    assert claims["aud"] == client_id
    assert isinstance(claims["exp"], int)
    assert now - leeway <= claims["exp"], "expired"
    return VerifiedResponse(header=dict(decoded.header), claims=dict(claims))


class RefreshingVerifier:
    """A relying party that caches the server's JWK Set and fetches it again, once, on an unknown kid.

    That is what a client that follows OpenID Connect Core 10.1.1 does; every guarantee about key
    rotation is stated for it. ``fetch_jwks`` gets the JWK Set (over HTTP, however the test talks to
    the server); :meth:`verify` is :func:`verify_response`, thread-safe.
    """

    def __init__(self, fetch_jwks: Callable[[], dict[str, Any]], *, issuer: str) -> None:
        self.fetch_jwks = fetch_jwks
        self.issuer = issuer
        self.jwks = fetch_jwks()
        self.refreshes = 0
        self.lock = threading.Lock()

    def verify(self, token: str, client_id: str) -> VerifiedResponse:
        segment = token.split(".")[0]
        kid = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))).get("kid")
        with self.lock:
            if kid not in {key.get("kid") for key in self.jwks["keys"]}:
                self.jwks = self.fetch_jwks()
                self.refreshes += 1
            jwks = self.jwks
        return verify_response(token, jwks=jwks, issuer=self.issuer, client_id=client_id)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def decrypt_response(token: str, key: Any, *, alg: str, enc: str) -> tuple[dict[str, Any], str]:
    """JARM 2.4 step 1 with joserfc: the outer JWE header and the nested JWS."""
    from joserfc import jwe

    assert token.count(".") == 4, "not a compact JWE"
    decrypted = jwe.decrypt_compact(token, key, algorithms=[alg, enc])
    return dict(decrypted.protected), decrypted.plaintext.decode("ascii")


def derive_secret_key(secret: str, alg: str, enc: str) -> bytes:
    """OpenID Connect Core 10.2, written out independently of the server's code."""
    sizes = {"A128KW": 16, "A192KW": 24, "A256KW": 32, "A128GCMKW": 16, "A192GCMKW": 24, "A256GCMKW": 32}
    enc_sizes = {
        "A128CBC-HS256": 32,
        "A192CBC-HS384": 48,
        "A256CBC-HS512": 64,
        "A128GCM": 16,
        "A192GCM": 24,
        "A256GCM": 32,
    }
    length = enc_sizes[enc] if alg == "dir" else sizes[alg]
    hash_name = "sha256" if length <= 32 else ("sha384" if length <= 48 else "sha512")
    return hashlib.new(hash_name, secret.encode("utf-8")).digest()[:length]
