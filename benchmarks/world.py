"""What the benchmarks measure against: a user, server keys, clients, logged-in browsers, the
authorization URLs, and the bare cryptographic operations a JARM response is made of.

Imported after ``django.setup()`` (benchmarks/run.py does that).
"""

from __future__ import annotations

import datetime
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding as asymmetric_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.utils import timezone
from jwcrypto import jwk
from oauth2_provider.models import get_application_model, get_grant_model

from django_jarm import client_keys, keys, state, tokens
from django_jarm.authorization import ResponsePlanner
from django_jarm.models import ClientSettings, ServerKey


def forget_cached_configuration() -> None:
    """Make every process cache re-read keys and client settings from the database.

    One of the TWO places where the benchmarks reach into django_jarm's caches (with
    :func:`use_snapshot_of`): figure 4 calls it after changing which server keys are published
    with ``QuerySet.update()``, which does not move the state version.
    """
    state.clear()


_kept_snapshots: dict[str, Any] = {}
_snapshot_owner: list[str] = []


def use_snapshot_of(database: str) -> None:
    """Swap django_jarm's state snapshot along with the database figure 4 swaps in.

    Both databases hold clients under the same ids, so one snapshot cannot serve both; a
    deployment has one database, and keeps its snapshot warm: each database keeps its own here.
    """
    if _snapshot_owner:
        _kept_snapshots[_snapshot_owner.pop()] = state._snapshot
    state._snapshot = _kept_snapshots.pop(database, None)
    _snapshot_owner.append(database)


Application = get_application_model()
Grant = get_grant_model()

ISSUER = "http://testserver/o"
REDIRECT_URI = "https://rp.example/cb"
# RFC 7636 appendix B: a fixed verifier/challenge pair (the code is never redeemed here).
CODE_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
RESPONSE_PARAMS = [("code", "Ssp5fmHGZ9lTKm2NPJvhbEFWXUCbQx"), ("state", "af0ifjsldkj")]

ENC_ALG, ENC_ENC = "RSA-OAEP-256", "A128CBC-HS256"
#: The three clients: the signing algorithm of each, and whether it is encrypted to. The
#: encrypted one signs with ES256, the cheapest signature, so the encryption step shows.
CASES = {"ES256": ("ES256", False), "PS256": ("PS256", False), "nested": ("ES256", True)}
CASE_LABELS = {"ES256": "ES256", "PS256": "PS256", "nested": f"ES256 + {ENC_ALG}"}


@dataclass
class World:
    """What the run set up: a user, server keys, clients, their keys, and a logged-in browser.

    ``twins`` holds, for each case, a second client configured exactly like it, through which
    figure 2 makes plain requests that compute the case's bare cryptography in the request.
    """

    user: Any
    browser: Client
    apps: dict[str, Any]
    twins: dict[str, Any]
    server_keys: dict[str, ServerKey]
    client_private_key: jwk.JWK
    extra_server_kids: list[str] = field(default_factory=list)


class BenchmarkPlanner(ResponsePlanner):
    """django_jarm's planner (``JARM["RESPONSE_PLANNER"]`` in benchmarks/settings.py), plus one
    thing: a response to a client listed in ``in_request`` first runs that client's bare
    cryptography, where the JWT path builds the JWT (the first step of ``deliver``).

    The twin clients' plain responses then pay for the cryptography exactly where a JWT
    response pays for it, in the state the request leaves the CPU caches in, and the code after
    it runs in the state the cryptography leaves them in. Every request, JWT or plain, makes the
    same one dictionary lookup here.
    """

    in_request: ClassVar[dict[str, Callable[[], Any]]] = {}

    def deliver(self, http_request: Any, plan: Any, params: Any) -> Any:
        cryptography = self.in_request.get(plan.request.client_id)
        if cryptography is not None:
            cryptography()
        return super().deliver(http_request, plan, params)


def rsa_public_jwk(key: jwk.JWK, kid: str) -> dict[str, Any]:
    public: dict[str, Any] = json.loads(key.export_public())
    public.update({"kid": kid, "use": "enc", "alg": ENC_ALG})
    return public


def encrypted_client_settings(public: dict[str, Any]) -> dict[str, Any]:
    return {
        "authorization_signed_response_alg": CASES["nested"][0],
        "authorization_encrypted_response_alg": ENC_ALG,
        "authorization_encrypted_response_enc": ENC_ENC,
        "jwks": {"keys": [public]},
    }


def _new_app(user: Any, name: str, jarm: dict[str, Any]) -> Any:
    app = Application.objects.create(
        name=name,
        user=user,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        skip_authorization=True,
        algorithm=Application.RS256_ALGORITHM,
    )
    ClientSettings.objects.create(application=app, **jarm)
    return Application.objects.select_related("jarm").get(pk=app.pk)


def build_world() -> World:
    """Migrate the in-memory database and create the user, ES256 and PS256 keys, and clients."""
    call_command("migrate", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password")
    server_keys = {alg: keys.generate_server_key(alg) for alg in ("ES256", "PS256")}
    # Stored long ago: a key signs only once every process could publish it (keys.publication_wait).
    ServerKey.objects.update(created=timezone.now() - datetime.timedelta(hours=1))
    client_private_key = jwk.JWK.generate(kty="RSA", size=2048)
    public = rsa_public_jwk(client_private_key, "rp-enc-1")
    settings = {
        "ES256": {"authorization_signed_response_alg": "ES256"},
        "PS256": {"authorization_signed_response_alg": "PS256"},
        "nested": encrypted_client_settings(public),
    }
    apps = {case: _new_app(user, f"{CASE_LABELS[case]} client", jarm) for case, jarm in settings.items()}
    twins = {case: _new_app(user, f"{CASE_LABELS[case]} twin", jarm) for case, jarm in settings.items()}
    browser = Client()
    browser.force_login(user)
    return World(user, browser, apps, twins, server_keys, client_private_key)


def authorize_url(prefix: str, app: Any, response_mode: str) -> str:
    query = [
        ("client_id", app.client_id),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid read"),
        ("state", "af0ifjsldkj"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CODE_CHALLENGE),
        ("code_challenge_method", "S256"),
        ("response_mode", response_mode),
    ]
    return f"{prefix}?{urlencode(query)}"


def check_authorization(browser: Client, url: str, *, jwt: bool) -> None:
    """The request answers what the benchmark claims to measure (a redirect with a code or a JWT)."""
    response = browser.get(url)
    assert response.status_code == 302, (url, response.status_code)
    names = {name for name, _ in parse_qsl(urlsplit(response["Location"]).query)}
    assert names == ({"response"} if jwt else {"code", "state"}), names


def get(browser: Client, url: str) -> Callable[[], Any]:
    request = browser.get

    def call() -> Any:
        return request(url)

    return call


# The JOSE work of one response ------------------------------------------------------------


def response_token(world: World, case: str) -> Callable[[], str]:
    """``tokens`` building the case's response (claims, signature, encryption), keys obtained once."""
    app = world.apps[case]
    alg, encrypted = CASES[case]
    signing_key = keys.get_signing_key(alg, app)
    encryption_key = client_keys.get_encryption_key(app, app.jarm.metadata()) if encrypted else None

    def build() -> str:
        claims = tokens.response_claims(RESPONSE_PARAMS, issuer=ISSUER, client_id=app.client_id, lifetime=120)
        signed = tokens.sign(claims, signing_key)
        return signed if encryption_key is None else tokens.encrypt(signed, encryption_key)

    return build


def _private_key(key: jwk.JWK) -> Any:
    """A ``cryptography`` key parsed from PEM, independent of jwcrypto's own parsed object."""
    return serialization.load_pem_private_key(key.export_to_pem(private_key=True, password=None), password=None)


def bare_crypto(world: World, case: str) -> Callable[[], None]:
    """The cryptography alone, on keys parsed beforehand, for inputs of a real response's sizes:
    the signature (ECDSA P-256 or RSA-PSS, SHA-256) over the signing input and, when the client
    is encrypted to, RSA-OAEP-256 of a fresh 256-bit CEK and AES-128-CBC + HMAC-SHA-256 of the
    signed token (RFC 7518 5.2.2). No JSON, no base64: what any JOSE library has to do."""
    app = world.apps[case]
    alg, encrypted = CASES[case]
    signing_key = keys.get_signing_key(alg, app)
    private = _private_key(signing_key.jwk)
    claims = tokens.response_claims(RESPONSE_PARAMS, issuer=ISSUER, client_id=app.client_id, lifetime=120)
    signed = tokens.sign(claims, signing_key)
    signing_input = signed.rsplit(".", 1)[0].encode("ascii")
    if alg == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())

        def signature() -> None:
            private.sign(signing_input, ecdsa)
    else:
        pss = asymmetric_padding.PSS(asymmetric_padding.MGF1(hashes.SHA256()), hashes.SHA256().digest_size)
        sha256 = hashes.SHA256()

        def signature() -> None:
            private.sign(signing_input, pss, sha256)

    if not encrypted:
        return signature
    recipient = _private_key(world.client_private_key).public_key()
    oaep = asymmetric_padding.OAEP(asymmetric_padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    header = response_token(world, case)().split(".")[0].encode("ascii")  # the AAD: a real header
    signed_bytes = signed.encode("ascii")

    def sign_and_encrypt() -> None:
        signature()
        plaintext = signed_bytes  # a signed response of the real length
        cek = os.urandom(32)
        recipient.encrypt(cek, oaep)
        iv = os.urandom(16)
        pad = 16 - len(plaintext) % 16  # PKCS #7, as cheaply as it can be written
        encryptor = Cipher(algorithms.AES(cek[16:]), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(plaintext + bytes((pad,)) * pad) + encryptor.finalize()
        length = (len(header) * 8).to_bytes(8, "big")
        hmac.digest(cek[:16], header + iv + ciphertext + length, "sha256")

    return sign_and_encrypt


# Figure 4: many clients on a second database ---------------------------------------------


@dataclass
class ManyClients:
    """A second in-memory database holding ``count`` clients, swapped in as ``default``."""

    connection: Any
    browser: Client
    urls: list[str]
    cursor: int = 0

    def next_request(self) -> Any:
        """The next client's authorization request, round robin."""
        index = self.cursor
        self.cursor = (index + 1) % len(self.urls)
        return self.browser.get(self.urls[index])


def build_many_clients(world: World, count: int) -> ManyClients:
    """Same user and ES256 key as the main database, and ``count`` encrypted clients."""
    main = connections["default"]
    other = connections.create_connection("default")
    connections["default"] = other
    try:
        call_command("migrate", interactive=False, verbosity=0)
        user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password")
        es256 = world.server_keys["ES256"]
        ServerKey.objects.create(
            **{f.attname: getattr(es256, f.attname) for f in ServerKey._meta.concrete_fields if not f.primary_key}
        )
        # A few distinct RSA keys, each client under its own kid (generating 1,000 RSA keys is slow).
        pool = [world.client_private_key, *(jwk.JWK.generate(kty="RSA", size=2048) for _ in range(3))]
        Application.objects.bulk_create(
            Application(
                name=f"client {index}",
                user=user,
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                redirect_uris=REDIRECT_URI,
                skip_authorization=True,
                hash_client_secret=False,
                algorithm=Application.RS256_ALGORITHM,
            )
            for index in range(count)
        )
        apps = list(Application.objects.order_by("pk"))
        ClientSettings.objects.bulk_create(
            ClientSettings(
                application=app,
                **encrypted_client_settings(rsa_public_jwk(pool[index % len(pool)], f"rp-{index}-enc")),
            )
            for index, app in enumerate(apps)
        )
        browser = Client()
        browser.force_login(user)
        urls = [authorize_url("/o/authorize/", app, "query.jwt") for app in apps]
        check_authorization(browser, urls[0], jwt=True)
    finally:
        connections["default"] = main
    return ManyClients(other, browser, urls)
