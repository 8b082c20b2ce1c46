"""No secret reaches a log record or an error page, whatever the flow.

Every flow runs with all logging captured at DEBUG: the root logger gets a capturing handler
and every logger (django, oauth2_provider, oauthlib, django_jarm and whatever else exists) is
set to DEBUG and enabled for the test. Each record is rendered as ``record.getMessage()`` plus
its formatted ``exc_info``, and searched for the secrets the flow handled: codes, access and
refresh tokens, ID tokens and response JWTs (any ``eyJ`` segment), ``state``, ``nonce``, PKCE
verifiers, client secrets, the relying party's private key members and the members of every
server private key (decrypted here with :func:`django_jarm.keys.decrypt_private_key`).

django_jarm's own records (loggers named ``django_jarm...``) are held to that strictly. oauthlib
and Django log some of these values at DEBUG themselves; each such leak is named in
:data:`KNOWN_THIRD_PARTY_LEAKS` and pinned by a strict xfail test, so that a fix upstream shows up
as an unexpected pass. Any other third-party record carrying a secret fails, and with
:class:`django_jarm.log_filters.RedactSecretsFilter` on the handler (the README's advice) no
record may carry one at all.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
import runpy
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.http import HttpResponse
from django.test import Client, override_settings
from joserfc.jwk import ECKey, RSAKey
from jwcrypto import jwk
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model

from django_jarm.keys import decrypt_private_key, generate_server_key
from django_jarm.log_filters import RedactSecretsFilter
from django_jarm.models import ServerKey
from tests import rp
from tests.conftest import REDIRECT_URI, RESPONSE_TYPES

JWT_MODES = ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"]
PLAIN_MODES = ["query", "fragment", "form_post", None]
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
#: Secret values shorter than this are not searched for (they would match by chance).
MIN_SECRET_LENGTH = 12
#: A candidate JWS or JWE segment: base64url of a JSON object starts with "eyJ" ('{"').
JWT_SEGMENT = re.compile(r"eyJ[A-Za-z0-9_-]{21,}")


def carries_jwt_segment(text: str) -> bool:
    """Whether ``text`` holds base64url of a JSON text, as every JWT header is.

    A random id that happens to contain "eyJ" does not decode to printable characters.
    """
    for match in JWT_SEGMENT.finditer(text):
        decoded = base64.urlsafe_b64decode(match.group()[:24])
        if all(0x20 <= byte < 0x7F for byte in decoded):
            return True
    return False


#: Key encryption secret of the test run (32+ characters, distinctive so it can be searched for).
KEY_SECRET = "kes-" + secrets.token_urlsafe(32)
OTHER_KEY_SECRET = "kes-other-" + secrets.token_urlsafe(32)
JARM_SETTINGS = {
    "SIGNING_ALGS_SUPPORTED": ["RS256", "PS256", "ES256", "EdDSA", "HS256"],
    "KEY_ENCRYPTION_SECRET": KEY_SECRET,
}
#: Loggers whose level is raised for the test even if nothing created them yet.
NAMED_LOGGERS = ("django", "django.request", "django.template", "oauth2_provider", "oauthlib", "django_jarm")

#: Every leak found in DOT, oauthlib and Django: id -> (logger name prefix, message prefix, what it carries).
KNOWN_THIRD_PARTY_LEAKS: dict[str, tuple[str, str, str]] = {
    "oauthlib-created-grant": (
        "oauthlib.oauth2.rfc6749.grant_types.authorization_code",
        "Created authorization code grant ",
        "oauthlib: logger 'oauthlib.oauth2.rfc6749.grant_types.authorization_code' logs "
        "'Created authorization code grant {'code': ..., 'state': ...}' at DEBUG: code and state",
    ),
    "oauthlib-saving-grant": (
        "oauthlib.oauth2.rfc6749.grant_types.authorization_code",
        "Saving grant ",
        "oauthlib: logger 'oauthlib.oauth2.rfc6749.grant_types.authorization_code' logs "
        "'Saving grant {'code': ..., 'state': ..., ...}' at DEBUG: code and state, and in the hybrid flows "
        "also access_token and id_token",
    ),
    "django-db-backends": (
        "django.db.backends",
        "(",
        "Django: with settings.DEBUG on, logger 'django.db.backends' logs every SQL statement with its "
        "parameters at DEBUG: the code, access and refresh tokens DOT inserts, and each stored server key's "
        "encrypted JWE",
    ),
    "django-template-variable": (
        "django.template",
        "Exception while resolving variable ",
        "Django: logger 'django.template' logs 'Exception while resolving variable 'error' in template "
        "'oauth2_provider/authorize.html'' at DEBUG with a VariableDoesNotExist whose message dumps the "
        "template context, including repr(request) with the full query string: state and nonce",
    ),
}


# Capturing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    name: str
    level: str
    text: str


class _Capture(logging.Handler):
    """Renders each record when it is emitted, as a real handler would (arguments may change later)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[Captured] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(Captured(record.name, record.levelname, render(record)))


def render(record: logging.LogRecord) -> str:
    """What any formatter would put in a log line: the message and the formatted exception."""
    text = record.getMessage()
    formatter = logging.Formatter()
    if record.exc_info:
        text += "\n" + formatter.formatException(record.exc_info)
    if record.stack_info:
        text += "\n" + formatter.formatStack(record.stack_info)
    return text


@pytest.fixture
def debug_logs() -> Iterator[_Capture]:
    """Every record of every logger at DEBUG, for the duration of the test."""
    capture = _Capture()
    manager = logging.root.manager
    for name in NAMED_LOGGERS:
        logging.getLogger(name)
    loggers = [logging.root] + [logger for logger in manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    detached = [logger for logger in loggers if not logger.propagate]
    disabled_level = manager.disable
    logging.disable(logging.NOTSET)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    logging.root.addHandler(capture)
    for logger in detached:  # records of non-propagating loggers never reach the root
        logger.addHandler(capture)
    try:
        yield capture
    finally:
        logging.root.removeHandler(capture)
        for logger in detached:
            logger.removeHandler(capture)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
        logging.disable(disabled_level)


# Secrets ---------------------------------------------------------------------------------


@dataclass
class Secrets:
    """The secret values one test handled, by kind, and the error pages it received."""

    values: dict[str, set[str]] = field(default_factory=dict)
    error_pages: list[tuple[str, str]] = field(default_factory=list)

    def add(self, kind: str, value: Any) -> None:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            self.values.setdefault(kind, set()).add(value)

    def add_key(self, kind: str, key: Any) -> None:
        """The private members of a JWK (a dict, a jwcrypto or a joserfc key)."""
        if isinstance(key, jwk.JWK):
            members = json.loads(key.export_private())
        elif isinstance(key, dict):
            members = key
        else:
            members = key.as_dict(private=True)
        for name in PRIVATE_MEMBERS:
            self.add(f"{kind} private member {name}", members.get(name))

    def add_pem(self, kind: str, pem: bytes) -> None:
        for line in pem.decode().splitlines():
            if not line.startswith("-----"):
                self.add(f"{kind} PEM line", line)

    def collect_stored(self) -> None:
        """Codes and tokens in DOT's tables, and every stored server key's private members."""
        for code in get_grant_model().objects.values_list("code", flat=True):
            self.add("code", code)
        for token in get_access_token_model().objects.values_list("token", flat=True):
            self.add("access token", token)
        for token in get_refresh_token_model().objects.values_list("token", flat=True):
            self.add("refresh token", token)
        for server_key in ServerKey.objects.all():
            self.add("stored server key", server_key.private_jwk_encrypted)
            for secret in (KEY_SECRET, OTHER_KEY_SECRET):
                with override_settings(JARM={**JARM_SETTINGS, "KEY_ENCRYPTION_SECRET": secret}):
                    try:
                        key = decrypt_private_key(server_key.private_jwk_encrypted, kid=server_key.kid)
                    except Exception:
                        continue
                self.add_key("server key", key)
                break
            else:
                pytest.fail(f"server key {server_key.kid} decrypts under neither test secret")
        self.add_pem("DOT OIDC key", settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"].encode())
        self.add_key("DOT OIDC key", jwk.JWK.from_pem(settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"].encode()))
        self.add("key encryption secret", KEY_SECRET)
        self.add("key encryption secret", OTHER_KEY_SECRET)

    def found_in(self, text: str) -> list[str]:
        """The kinds of secret ``text`` carries."""
        found = sorted({kind for kind, values in self.values.items() if any(value in text for value in values)})
        if carries_jwt_segment(text):
            found.append("JWT")
        return found

    def observe(self, response: Any, *, query: list[tuple[str, str]] | None = None) -> Any:
        """Remember the secrets an authorization endpoint answer carries, and its body if it is an error page."""
        for name, value in query or []:
            if name in ("state", "nonce", "client_secret", "code_verifier"):
                self.add(name, value)
        if response.status_code in (302, 303) or (
            response.status_code == 200 and b'<script nonce="' in response.content
        ):
            try:
                delivery = rp.delivery_of(response, REDIRECT_URI)
            except AssertionError:
                delivery = None
            for name, value in delivery.params if delivery else []:
                kind = {"response": "JWT", "id_token": "JWT"}.get(name, name.replace("_", " "))
                if name in ("code", "access_token", "id_token", "response", "state", "refresh_token"):
                    self.add(kind, value)
        elif response.status_code >= 400:
            self.error_pages.append((f"HTTP {response.status_code}", response.content.decode(errors="replace")))
        return response


@pytest.fixture
def found() -> Secrets:
    return Secrets()


def leaks(capture: _Capture, found: Secrets, *, own: bool) -> list[tuple[str, str, list[str], str]]:
    """Records carrying a secret: (logger, kinds, message start); django_jarm's own or everybody else's."""
    result = []
    for record in capture.records:
        if record.name.startswith("django_jarm") != own:
            continue
        kinds = found.found_in(record.text)
        if kinds:
            result.append((record.name, record.level, kinds, record.text[:160]))
    return result


def known_leak(record_name: str, text: str) -> str | None:
    for leak_id, (logger_prefix, message_prefix, _) in KNOWN_THIRD_PARTY_LEAKS.items():
        if record_name.startswith(logger_prefix) and text.startswith(message_prefix):
            return leak_id
    return None


def assert_nothing_leaked(capture: _Capture, found: Secrets) -> None:
    found.collect_stored()
    assert capture.records, "nothing was captured: the capturing handler is not attached"
    assert leaks(capture, found, own=True) == []
    unknown = [leak for leak in leaks(capture, found, own=False) if known_leak(leak[0], leak[3]) is None]
    assert unknown == []
    for label, body in found.error_pages:
        assert found.found_in(body) == [], (label, body[:300])


# Flows -----------------------------------------------------------------------------------


def _state() -> str:
    return "st-" + secrets.token_urlsafe(16)


def _nonce() -> str:
    return "nonce-" + secrets.token_urlsafe(16)


@pytest.fixture
def flow(found: Secrets, redeem: Callable[..., Any]) -> Callable[..., Any]:
    """Send an authorization request with fresh secrets, record them, redeem any code."""

    def run(
        agent: Client,
        app: Any,
        response_type: str = "code",
        mode: str | list[str] | None = "jwt",
        *,
        scope: str = "openid read",
        nonce: bool = True,
        extra: dict[str, str] | None = None,
        consent: str | None = None,
        decrypt: Callable[[str], str] | None = None,
    ) -> Any:
        verifier, challenge = rp.pkce_pair()
        found.add("code_verifier", verifier)
        found.add("client_secret", getattr(app, "plain_secret", None))
        query = [("client_id", app.client_id), ("response_type", response_type), ("redirect_uri", REDIRECT_URI)]
        query += [("scope", scope), ("state", _state())]
        if nonce:
            query.append(("nonce", _nonce()))
        if "code" in response_type.split():
            query += [("code_challenge", challenge), ("code_challenge_method", "S256")]
        modes = [mode] if isinstance(mode, str) else (mode or [])
        query += [("response_mode", value) for value in modes]
        query = [(name, value) for name, value in query if name not in (extra or {})] + list((extra or {}).items())
        response = found.observe(agent.get("/o/authorize/?" + urlencode(query)), query=query)
        if consent is not None and response.status_code == 200 and "form" in (response.context or {}):
            form = response.context["form"]
            data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
            if consent == "allow":
                data["allow"] = "Authorize"
            response = found.observe(agent.post("/o/authorize/", data))
        _redeem_codes(response, app, verifier, redeem, found, decrypt)
        return response

    return run


def _redeem_codes(
    response: Any, app: Any, verifier: str, redeem: Callable[..., Any], found: Secrets, decrypt: Any
) -> None:
    """Exchange the code of a successful answer at the token endpoint (the verifier and secret travel there)."""
    try:
        delivery = rp.delivery_of(response, REDIRECT_URI)
    except AssertionError:
        return
    params = dict(delivery.params)
    code = params.get("code")
    if "response" in params:
        token = params["response"]
        if token.count(".") == 4 and decrypt is not None:
            token = decrypt(token)
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        for name in ("code", "access_token", "id_token", "state"):
            found.add(name.replace("_", " "), claims.get(name))
        code = claims.get("code")
    if code:
        answer = redeem(app, code, verifier)
        assert answer.status_code == 200, answer.content
        for name in ("access_token", "refresh_token", "id_token"):
            found.add(name.replace("_", " "), answer.json().get(name))


@pytest.fixture(autouse=True)
def _jarm_settings() -> Iterator[None]:
    with override_settings(JARM=JARM_SETTINGS):
        yield


def _public_jwks(key: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False)]}


# Authorization flows ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", RESPONSE_TYPES)
def test_success_in_every_mode(debug_logs, found, flow, browser, make_app, response_type):
    generate_server_key("PS256")
    default = make_app(response_type)
    ps256 = make_app(response_type, jarm={"authorization_signed_response_alg": "PS256"})
    for mode in JWT_MODES + PLAIN_MODES:
        flow(browser, default, response_type, mode)
    flow(browser, ps256, response_type, "jwt")
    assert_nothing_leaked(debug_logs, found)


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", RESPONSE_TYPES)
def test_consent_allow_and_deny(debug_logs, found, flow, browser, make_app, response_type):
    app = make_app(response_type, skip_authorization=False)
    for mode in ("jwt", "form_post.jwt", "query" if response_type == "code" else "fragment", "form_post"):
        flow(browser, app, response_type, mode, consent="allow")
        flow(browser, app, response_type, mode, consent="deny")
    assert_nothing_leaked(debug_logs, found)


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", ["code", "code id_token", "id_token token"])
def test_errors(debug_logs, found, flow, browser, make_app, response_type):
    app = make_app(response_type)
    strict = make_app(response_type, jarm={"require_jarm": True})
    for mode in ("jwt", "form_post.jwt", "query"):
        flow(browser, app, response_type, mode, scope="openid admin")  # invalid_scope
        flow(browser, app, response_type, mode, nonce=False)  # invalid_request for id_token types
        flow(Client(), app, response_type, mode, extra={"prompt": "none"})  # login_required
        flow(browser, strict, response_type, mode)
    flow(browser, app, response_type, "query.jwt")  # refused with tokens, allowed for code
    flow(browser, app, response_type, "query.jwt.evil")  # unknown mode: plain invalid_request
    flow(browser, app, response_type, ["jwt", "jwt"])  # repeated mode: plain invalid_request
    flow(browser, app, response_type, "jwt", extra={"client_id": "no-such-client-" + secrets.token_hex(4)})
    flow(browser, app, response_type, "jwt", extra={"redirect_uri": "https://attacker.example/cb"})
    flow(browser, app, response_type, "jwt", extra={"code_challenge_method": "plain-" + _state()})
    assert_nothing_leaked(debug_logs, found)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("alg", "key_factory"),
    [
        ("RSA-OAEP-256", lambda: RSAKey.generate_key(2048, parameters={"kid": "rp-enc", "use": "enc"})),
        ("ECDH-ES+A128KW", lambda: ECKey.generate_key("P-256", parameters={"kid": "rp-enc"})),
    ],
    ids=["RSA-OAEP-256", "ECDH-ES+A128KW"],
)
def test_clients_with_encryption_keys(debug_logs, found, flow, browser, make_app, alg, key_factory):
    rp_key = key_factory()
    found.add_key("RP private key", rp_key)

    def decrypt(token: str) -> str:
        return rp.decrypt_response(token, rp_key, alg=alg, enc="A128CBC-HS256")[1]

    for response_type in RESPONSE_TYPES:
        app = make_app(response_type, jarm={"authorization_encrypted_response_alg": alg, "jwks": _public_jwks(rp_key)})
        for mode in ("jwt", "query.jwt", "form_post.jwt"):
            flow(browser, app, response_type, mode, decrypt=decrypt)
        flow(browser, app, response_type, "jwt", scope="openid admin", decrypt=decrypt)
    assert_nothing_leaked(debug_logs, found)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "jarm",
    [
        {"authorization_signed_response_alg": "HS256"},
        {"authorization_encrypted_response_alg": "dir", "authorization_encrypted_response_enc": "A256CBC-HS512"},
        {"authorization_encrypted_response_alg": "A256KW"},
    ],
    ids=["HS256", "dir", "A256KW"],
)
def test_clients_keyed_by_their_unhashed_secret(debug_logs, found, flow, browser, make_app, jarm):
    from joserfc.jwk import OctKey

    for response_type in ("code", "code id_token token"):
        secret = "cs-" + secrets.token_urlsafe(64)
        app = make_app(response_type, hash_client_secret=False, client_secret=secret, jarm=jarm)
        alg = jarm.get("authorization_encrypted_response_alg")
        enc = jarm.get("authorization_encrypted_response_enc", "A128CBC-HS256")

        def decrypt(token: str, alg: Any = alg, enc: str = enc, secret: str = secret) -> str:
            key = OctKey.import_key(rp.derive_secret_key(secret, alg, enc))
            return rp.decrypt_response(token, key, alg=alg, enc=enc)[1]

        for mode in ("jwt", "form_post.jwt"):
            flow(browser, app, response_type, mode, decrypt=decrypt)
        flow(browser, app, response_type, "jwt", scope="openid admin", decrypt=decrypt)
    # The same clients with a short secret: server_error, logged with the reason only.
    short = make_app("code", hash_client_secret=False, client_secret="cs-short-" + secrets.token_hex(4), jarm=jarm)
    flow(browser, short, "code", "jwt")
    assert_nothing_leaked(debug_logs, found)


@pytest.mark.django_db
def test_unreadable_server_key(debug_logs, found, flow, browser, make_app):
    with override_settings(JARM={**JARM_SETTINGS, "KEY_ENCRYPTION_SECRET": OTHER_KEY_SECRET}):
        generate_server_key("ES256")
    app = make_app("code", jarm={"authorization_signed_response_alg": "ES256"})
    for mode in JWT_MODES:
        response = flow(browser, app, "code", mode)
        assert dict(rp.delivery_of(response, REDIRECT_URI).params)["error"] == "server_error"
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", "--database", "default", stdout=_Sink(), stderr=_Sink())
    assert "django_jarm.E010" in str(excinfo.value)
    found.collect_stored()
    assert found.found_in(str(excinfo.value)) == []
    assert any("cannot be decrypted" in record.text for record in debug_logs.records)
    assert_nothing_leaked(debug_logs, found)


@pytest.mark.django_db
def test_failing_jwks_uri(debug_logs, found, flow, browser, make_app):
    app = make_app(
        "code",
        jarm={"authorization_encrypted_response_alg": "RSA-OAEP", "jwks_uri": "https://jwks.invalid/"},
    )
    for mode in ("jwt", "form_post.jwt", "jwt"):  # the second jwt is answered from the failure cache
        response = flow(browser, app, "code", mode)
        assert dict(rp.delivery_of(response, REDIRECT_URI).params)["error"] == "server_error"
    assert any(record.name == "django_jarm.client_keys" for record in debug_logs.records)
    assert_nothing_leaked(debug_logs, found)


# Operator flows ---------------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.mark.django_db
def test_jarm_keys_command(debug_logs, found, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    found.add_pem("imported PEM", pem)
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    found.add_pem("refused PEM", rsa_pem)
    refused = tmp_path / "rsa.pem"
    refused.write_bytes(rsa_pem)
    out = _Sink()
    for args in (
        ("generate", "--alg", "PS256"),
        ("generate", "--alg", "EdDSA"),
        ("import", str(path), "--alg", "ES256"),
        ("list",),
        ("rotate", "--alg", "PS256"),
        ("rotate", "--alg", "ES256"),
        ("rotate", "--if-older-than", "0s"),
        ("reencrypt",),
        ("list",),
    ):
        call_command("jarm_keys", *args, stdout=out)
    with pytest.raises(Exception, match="needs an EC P-256 key"):
        call_command("jarm_keys", "import", str(refused), "--alg", "ES256", stdout=out)
    found.collect_stored()
    assert found.found_in(out.text) == []
    assert_nothing_leaked(debug_logs, found)


@pytest.mark.django_db
def test_admin_pages(debug_logs, found, admin_client, make_app):
    for alg in ("PS256", "ES256", "EdDSA"):
        generate_server_key(alg)
    admin_client.post("/admin/django_jarm/serverkey/generate/", {"alg": "PS256"})
    rp_key = RSAKey.generate_key(2048)
    found.add_key("RP private key", rp_key)
    secret = "cs-" + secrets.token_urlsafe(64)
    clients = [
        make_app("code", jarm={"authorization_signed_response_alg": "PS256"}),
        make_app(
            "code",
            jarm={"authorization_encrypted_response_alg": "RSA-OAEP-256", "jwks": _public_jwks(rp_key)},
        ),
        make_app(
            "code",
            hash_client_secret=False,
            client_secret=secret,
            jarm={"authorization_signed_response_alg": "HS256", "authorization_encrypted_response_alg": "dir"},
        ),
        make_app(
            "code", jarm={"jwks_uri": "https://jwks.invalid/", "authorization_encrypted_response_alg": "RSA-OAEP"}
        ),
    ]
    pages = [f"/admin/oauth2_provider/application/{app.pk}/change/" for app in clients]
    pages += ["/admin/django_jarm/serverkey/", "/admin/django_jarm/serverkey/generate/"]
    pages += [f"/admin/django_jarm/serverkey/{pk}/change/" for pk in ServerKey.objects.values_list("pk", flat=True)]
    bodies = []
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        bodies.append((page, response.content.decode()))
    keys_pk = list(ServerKey.objects.values_list("pk", flat=True))
    admin_client.post(
        "/admin/django_jarm/serverkey/", {"action": "retire_keys", "_selected_action": keys_pk[-1:]}, follow=True
    )
    found.add("client_secret", secret)
    found.collect_stored()
    for page, body in bodies:
        kinds = [kind for kind in found.found_in(body) if not kind.startswith("client_secret")]
        # DOT's own Application form shows an unhashed secret to the admin; nothing else may appear.
        assert kinds == [], page
    assert_nothing_leaked(debug_logs, found)


# Third-party leaks, pinned -----------------------------------------------------------------


def _third_party_leak_ids(capture: _Capture, found: Secrets) -> dict[str, set[str]]:
    """Known leak id -> kinds of secret it carried in this run."""
    seen: dict[str, set[str]] = {}
    for name, _, kinds, text in leaks(capture, found, own=False):
        leak_id = known_leak(name, text)
        if leak_id is not None:
            seen.setdefault(leak_id, set()).update(kinds)
    return seen


@pytest.mark.django_db
@pytest.mark.parametrize(
    "leak_id",
    [
        pytest.param(leak_id, marks=pytest.mark.xfail(strict=True, reason=f"third-party leak: {reason}"))
        for leak_id, (_, _, reason) in KNOWN_THIRD_PARTY_LEAKS.items()
    ],
)
def test_third_party_loggers_at_debug(debug_logs, found, flow, browser, make_app, leak_id):
    with _sql_logged():
        for response_type in ("code", "code id_token token"):
            app = make_app(response_type, skip_authorization=False)
            flow(browser, app, response_type, "jwt", consent="allow")
            flow(browser, make_app(response_type), response_type, "jwt")
    found.collect_stored()
    assert leak_id not in _third_party_leak_ids(debug_logs, found)


@contextlib.contextmanager
def _sql_logged() -> Iterator[None]:
    """SQL statements logged as with settings.DEBUG on (django.db.backends)."""
    connection.force_debug_cursor = True
    try:
        yield
    finally:
        connection.force_debug_cursor = False


@pytest.mark.django_db
def test_dot_success_url_record_carries_no_response(debug_logs, found, flow, browser, make_app):
    """DOT logs the URL it redirects to after consent; the JARM view keeps the real one away from it."""
    for response_type in RESPONSE_TYPES:
        app = make_app(response_type, skip_authorization=False)
        for mode in ("jwt", "query" if response_type == "code" else "fragment", "form_post"):
            flow(browser, app, response_type, mode, consent="allow")
    found.collect_stored()
    lines = [record.text for record in debug_logs.records if record.text.startswith("Success url for the request")]
    assert len(lines) == len(RESPONSE_TYPES) * 3
    assert [found.found_in(line) for line in lines] == [[]] * len(lines)


def _flows_with_every_leak(flow: Callable[..., Any], browser: Client, make_app: Callable[..., Any]) -> None:
    for response_type in RESPONSE_TYPES:
        app = make_app(response_type, skip_authorization=False)
        flow(browser, app, response_type, "jwt", consent="allow")
        flow(browser, app, response_type, "form_post", consent="allow")
        flow(browser, make_app(response_type), response_type, "query" if response_type == "code" else "fragment")


@pytest.mark.django_db
def test_redact_filter_on_the_handler_removes_oauthlib_leaks(debug_logs, found, flow, browser, make_app):
    debug_logs.addFilter(RedactSecretsFilter())
    _flows_with_every_leak(flow, browser, make_app)
    found.collect_stored()
    oauthlib_leaks = [leak for leak in leaks(debug_logs, found, own=False) if leak[0].startswith("oauthlib")]
    assert oauthlib_leaks == []
    assert any("[redacted]" in record.text for record in debug_logs.records if record.name.startswith("oauthlib"))


@pytest.mark.django_db
def test_redact_filter_on_the_handler_removes_every_leak(debug_logs, found, flow, browser, make_app):
    debug_logs.addFilter(RedactSecretsFilter())
    _flows_with_every_leak(flow, browser, make_app)
    found.collect_stored()
    assert leaks(debug_logs, found, own=False) == []


@pytest.mark.django_db
def test_third_party_leaks_are_only_what_is_documented(debug_logs, found, flow, browser, make_app):
    """The known leaks carry what their reasons say, and stop at DEBUG: INFO and above are clean."""
    with _sql_logged():
        for response_type in RESPONSE_TYPES:
            app = make_app(response_type, skip_authorization=False)
            flow(browser, app, response_type, "jwt", consent="allow")
    found.collect_stored()
    seen = _third_party_leak_ids(debug_logs, found)
    assert set(seen) == set(KNOWN_THIRD_PARTY_LEAKS)
    assert {"code", "state"} <= seen["oauthlib-created-grant"]
    assert {"code", "state"} <= seen["oauthlib-saving-grant"]
    assert {"state", "nonce"} <= seen["django-template-variable"]
    assert {"code", "access token", "refresh token"} <= seen["django-db-backends"]
    levels = {level for _, level, _, _ in leaks(debug_logs, found, own=False)}
    assert levels == {"DEBUG"}


# Every handler, as the example project configures logging ---------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class _HandlerOutputs:
    streams: dict[str, io.StringIO]

    def texts(self) -> dict[str, str]:
        outputs = {f"stream handler {name}": stream.getvalue() for name, stream in self.streams.items()}
        for index, message in enumerate(mail.outbox):
            outputs[f"e-mail {index}"] = "\n".join(
                [message.subject, message.body, *(content for content, _ in getattr(message, "alternatives", []))]
            )
        return outputs


def _logging_state() -> list[tuple[logging.Logger, list[Any], int, bool, bool, list[Any]]]:
    loggers = [logging.root] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    return [
        (logger, list(logger.handlers), logger.level, logger.propagate, logger.disabled, list(logger.filters))
        for logger in loggers
    ]


@pytest.fixture
def example_logging(tmp_path, monkeypatch, settings) -> Iterator[_HandlerOutputs]:
    """Logging set up as Django sets it up for the example project (its LOGGING over Django's defaults),
    every logger at DEBUG, each stream handler writing to a buffer and mail_admins to the locmem outbox."""
    from django.utils.log import configure_logging

    monkeypatch.setenv("DJANGO_JARM_DEMO_DB", str(tmp_path / "demo.sqlite3"))
    monkeypatch.setenv("DJANGO_JARM_DEMO_KEY_FILE", str(tmp_path / "oidc.key"))
    monkeypatch.setenv("DJANGO_JARM_DEMO_RP_KEY_FILE", str(tmp_path / "relying_party.key"))
    example = runpy.run_path(str(REPO_ROOT / "example_project" / "settings.py"))
    settings.ADMINS = [("Operator", "operator@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    saved = _logging_state()
    disabled_level = logging.root.manager.disable
    configure_logging("logging.config.dictConfig", example["LOGGING"])
    streams: dict[str, io.StringIO] = {}
    for logger, *_ in _logging_state():
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and handler.get_name() not in streams:
                streams[handler.get_name()] = io.StringIO()
                handler.setStream(streams[handler.get_name()])
    logging.disable(logging.NOTSET)
    try:
        yield _HandlerOutputs(streams)
    finally:
        known = {logger for logger, *_ in saved}
        for logger, *_ in _logging_state():
            if logger not in known:
                logger.handlers, logger.level, logger.propagate, logger.disabled = [], logging.NOTSET, True, False
        for logger, handlers, level, propagate, disabled, filters in saved:
            logger.handlers, logger.level, logger.propagate, logger.disabled = handlers, level, propagate, disabled
            logger.filters = filters
        logging.disable(disabled_level)


def _http_get(address: tuple[str, int], target: str, *, cookie: str = "") -> tuple[int, str]:
    import http.client

    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.request("GET", target, headers={"Cookie": cookie} if cookie else {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, response.getheader("Location") or ""


def _fail_with_secrets_in_scope(code: str, token: str) -> None:
    """An exception raised where a code and a token are local variables (as in a failing view)."""
    grant = {"code": code, "access_token": token}
    raise RuntimeError(f"cannot store {len(grant)} values")


@pytest.mark.django_db(transaction=True)
def test_every_handler_django_configures_at_debug(example_logging, found, flow, browser, make_app, user):
    """Every flow at DEBUG through console, django.server and mail_admins, as the example project configures them."""
    from django.test import RequestFactory
    from django.utils.log import log_response

    from tests.conftest import serving

    with _sql_logged():
        for response_type in ("code", "code id_token token"):
            app = make_app(response_type)
            consent = make_app(response_type, skip_authorization=False)
            for mode in ("jwt", "form_post.jwt", "query" if response_type == "code" else "fragment", "form_post"):
                flow(browser, app, response_type, mode)
                flow(browser, consent, response_type, mode, consent="allow")
            flow(browser, app, response_type, "jwt", scope="openid admin")
            flow(Client(), app, response_type, "jwt", extra={"prompt": "none"})
    app = make_app("code")
    session_cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    found.add("session id", session_cookie)
    with serving(logged=True) as address:
        for agent_cookie in ("", f"{settings.SESSION_COOKIE_NAME}={session_cookie}"):
            _, challenge = rp.pkce_pair()
            query = [
                ("client_id", app.client_id),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid read"),
                ("state", _state()),
                ("nonce", _nonce()),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
                ("response_mode", "query.jwt"),
            ]
            for name, value in query:
                if name in ("state", "nonce"):
                    found.add(name, value)
            status, location = _http_get(address, "/o/authorize/?" + urlencode(query), cookie=agent_cookie)
            assert status == 302
            # The callback, as the demo's relying party receives it in the same process.
            callback = "/rp/callback?" + location.split("?", 1)[1]
            found.add("JWT", dict(parse_qsl(location.split("?", 1)[1])).get("response"))
            assert _http_get(address, callback)[0] == 404
    # A 500 while handling a callback that carries a code, a token and the session: Django's report.
    access_token = next(iter(found.values.get("access token", {"at-" + secrets.token_urlsafe(24)})))
    code = "code-" + secrets.token_urlsafe(24)
    found.add("code", code)
    request = RequestFactory().get(
        f"/rp/callback?code={code}&state={_state()}",
        HTTP_AUTHORIZATION=f"Bearer {access_token}",
        HTTP_COOKIE=f"{settings.SESSION_COOKIE_NAME}={session_cookie}",
    )
    try:
        _fail_with_secrets_in_scope(code, access_token)
    except RuntimeError as exc:
        log_response(
            "Internal Server Error: %s", request.path, response=HttpResponse(status=500), request=request, exception=exc
        )
    found.collect_stored()
    texts = example_logging.texts()
    assert set(texts) >= {"stream handler console", "stream handler django.server", "e-mail 0"}, set(texts)
    assert all(texts.values()), {name: len(text) for name, text in texts.items()}
    assert "[redacted" in texts["stream handler django.server"]
    assert "[redacted" in texts["stream handler console"]
    leaked = {name: found.found_in(text) for name, text in texts.items()}
    assert leaked == {name: [] for name in texts}
