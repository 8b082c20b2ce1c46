"""Hostile authorization requests and client settings, generated with hypothesis.

Every answer of the authorization endpoint, whatever the request, must keep these properties:

- never a 5xx (an exception in the view fails the test: the test client re-raises it);
- a request that asked for a JWT mode (``jwt`` or ``*.jwt``) gets no response parameter outside
  the JWT, except the documented plain errors ``server_error`` and ``invalid_request`` carrying
  nothing of the grant (see tests/test_no_leaks.py);
- a redirect (``Location``) or form_post ``action`` goes to exactly a registered redirect URI of
  the client the request named, once the response parameters are stripped off (its own query
  intact; scheme and host compared case-insensitively, RFC 3986 6.2.2.1), and nowhere else; the
  only other redirect is the login page on this server;
- a form_post page holds no unescaped input: one script, the nonce'd auto-submit one; every
  ``value`` attribute parses back to exactly the value sent; the CSP carries that script's nonce;
- no HTML page echoes a sent value that looks like markup;
- every JWT verifies with joserfc against the server's JWKS (or the client secret, or after
  decryption with the client's key), with the right ``iss`` and ``aud``, and ``alg`` never ``none``.

Then fixed cases: markup in ``state`` and in registered redirect URIs on the form_post page, and
algorithm confusion (HS* for a public client, ``none`` anywhere, client and server keys of the
wrong type, a missing server key).
the generated tests step around exactly those inputs, so that they keep testing everything else.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.utils.html import escape
from hypothesis import event, example, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from oauth2_provider.models import get_application_model, get_grant_model

from django_jarm.conf import (
    ALL_ENCRYPTION_ALGS,
    ALL_ENCRYPTION_ENCS,
    ALL_RESPONSE_MODES,
    ALL_SIGNING_ALGS,
    ASYMMETRIC_ENCRYPTION_ALGS,
    SYMMETRIC_ENCRYPTION_ALGS,
)
from django_jarm.exceptions import ConfigurationError
from django_jarm.keys import generate_server_key, import_server_key
from django_jarm.models import ClientSettings
from tests import rp
from tests.conftest import GRANT_OF_RESPONSE_TYPE, ISSUER, REDIRECT_URI, examples

Application = get_application_model()

JWT_MODES = ("jwt", "query.jwt", "fragment.jwt", "form_post.jwt")
#: Parameters an authorization response may carry (RFC 6749, OIDC, JARM, RFC 9207).
RESPONSE_PARAMETERS = frozenset(
    {
        "response",
        "code",
        "state",
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "id_token",
        "error",
        "error_description",
        "error_uri",
        "iss",
        "session_state",
    }
)
GRANT_PARAMETERS = frozenset({"code", "access_token", "id_token", "token_type", "expires_in", "scope", "iss"})
ALLOWED_PLAIN_ERRORS = frozenset({"server_error", "invalid_request"})
#: A registered redirect URI with its own query (which must survive untouched).
QUERY_REDIRECT_URI = "https://rp.example/cb2?tenant=a%2Fb&x=1"
REDIRECT_URIS = f"{REDIRECT_URI} {QUERY_REDIRECT_URI}"
HMAC_SECRET = "hs-" + secrets.token_urlsafe(64)
JARM_SETTINGS = {"SIGNING_ALGS_SUPPORTED": ["RS256", "PS256", "ES256", "HS256"], "CLIENT_JWKS_TIMEOUT": 0.2}
#: Markup from the injection payloads: never in a template of ours, DOT's or Django's, so finding it
#: raw in a page means the page echoed input unescaped (a short "<p" would match any page).
MARKUP = re.compile(r"<[A-Za-z/!?][^<]*(alert\(|evil\.example)")


# Strategies ----------------------------------------------------------------------------------

INJECTIONS = [
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    "</script><script>alert(document.domain)</script>",
    "</form><form action=https://evil.example>",
    "javascript:alert(1)",
    "\r\nSet-Cookie: pwned=1",
    "%0d%0aLocation:%20https://evil.example",
    "a\x00b",
    "\u2028\u2029",
    "\u202eevil",
    "' OR '1'='1",
    "{{ 7*7 }}{% debug %}",
    "&amp;&lt;&#x3C;",
    "&",
    "=",
    "#fragment",
    "?x=1&y=2",
    "\\",
    " ",
    "",
]
text = st.text(max_size=30)
control_text = st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Zs", "Zl", "Zp", "Cf"]), max_size=10)
hostile_text = st.one_of(
    st.sampled_from(INJECTIONS),
    text,
    control_text,
    st.builds(lambda n: "x" * n, st.sampled_from([1000, 10_000])),
    st.builds(lambda a, b: a + b, st.sampled_from(INJECTIONS), text),
)
known_modes = st.sampled_from(ALL_RESPONSE_MODES)
response_mode_value = st.one_of(
    known_modes,
    known_modes,
    st.sampled_from(
        [
            "",
            "JWT",
            "Query.jwt",
            "query.jwt ",
            " jwt",
            "jwt\x00",
            "query.jwt.evil",
            "evil.jwt",
            ".jwt",
            "web_message.jwt",
            "web_message",
            "query%2Ejwt",
            "query,jwt",
            "query.jwt query",
            "form_post.jwt\r\n",
            "ｊｗｔ",  # noqa: RUF001 - fullwidth letters on purpose
            "x" * 5000,
        ]
    ),
    hostile_text,
)
response_mode = st.lists(response_mode_value, max_size=3)
valid_response_types = st.sampled_from(list(GRANT_OF_RESPONSE_TYPE))
response_type_value = st.one_of(
    valid_response_types,
    valid_response_types.flatmap(lambda rt: st.permutations(rt.split()).map(" ".join)),
    valid_response_types.map(lambda rt: f"{rt} {rt.split()[0]}"),
    st.sampled_from(["none", "code  id_token", " code", "code\t", "CODE", "token code id_token", "device_code"]),
    hostile_text,
)
response_type = st.one_of(
    st.lists(response_type_value, min_size=1, max_size=1), st.lists(response_type_value, max_size=3)
)
HOSTILE_REDIRECT_URIS = [
    "https://rp.example/cb.evil.com",
    "https://rp.example/cb/../evil",
    "https://rp.example/cb/",
    "https://rp.example/cb?x=1",
    "https://rp.example/cb?",
    "https://rp.example/cb#",
    "https://rp.example/cb#frag",
    "https://rp.example/cb;evil=1",
    "https://rp.example@evil.example/cb",
    "https://evil.example@rp.example/cb",
    "https://rp.example:443/cb",
    "https://rp.example.evil.example/cb",
    "https://RP.EXAMPLE/cb",
    "HTTPS://rp.example/cb",
    "https://rp.example\\@evil.example/cb",
    "https:\\\\rp.example\\cb",
    "https://rp.example%2F@evil.example/cb",
    "//evil.example/cb",
    "/cb",
    "javascript:alert(1)//https://rp.example/cb",
    "javascript://rp.example/cb%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://rp.example/cb",
    "https://rp.example/cb2?x=1&tenant=a%2Fb",
    "https://rp.example/cb2?tenant=a/b&x=1",
    "https://rp.example/cb2?tenant=a%2Fb&x=1&x=2",
    "https://rp.example/cb2?tenant=a%2Fb",
    "https://rp.example/cb\r\nLocation: https://evil.example",
    "https://rp.example/cb\x00",
    " https://rp.example/cb",
]
redirect_uri = st.lists(
    st.one_of(
        st.sampled_from([REDIRECT_URI, QUERY_REDIRECT_URI]),
        st.sampled_from(HOSTILE_REDIRECT_URIS),
        hostile_text,
    ),
    max_size=2,
)
prompt = st.lists(
    st.one_of(
        st.sampled_from(["none", "login", "consent", "select_account", "create", "none login", "consent none", ""]),
        hostile_text,
    ),
    max_size=2,
)
scope = st.lists(
    st.one_of(
        st.sampled_from(["openid read", "openid", "read", "openid admin", "", "openid  read write"]), hostile_text
    ),
    max_size=2,
)
nonce = st.lists(st.one_of(st.just("n-0S6_WzA2Mj"), hostile_text), max_size=2)
state = st.lists(st.one_of(st.just("af0ifjsldkj"), hostile_text), max_size=2)
code_challenge_method = st.lists(
    st.one_of(st.just("S256"), st.sampled_from(["plain", "s256", "S512"]), text), max_size=2
)


@dataclass
class Registered:
    """The clients of one test, and what a relying party needs to check their responses."""

    apps: dict[str, Any]
    rp_key: Any
    jwks: dict[str, Any]
    issuer: str

    def by_client_id(self, client_id: str) -> Any | None:
        return next((app for app in self.apps.values() if app.client_id == client_id), None)


@pytest.fixture
def registered(make_app, jwks, discovery) -> Iterator[Registered]:
    with override_settings(JARM=JARM_SETTINGS):
        generate_server_key("PS256")
        generate_server_key("ES256")
        rp_key = RSAKey.generate_key(2048, parameters={"kid": "rp-enc", "use": "enc"})
        public = {"keys": [rp_key.as_dict(private=False)]}
        apps = {
            "code": make_app("code", redirect_uris=REDIRECT_URIS),
            "hybrid": make_app(
                "code id_token", redirect_uris=REDIRECT_URIS, jarm={"authorization_signed_response_alg": "PS256"}
            ),
            "implicit": make_app(
                "id_token token",
                redirect_uris=REDIRECT_URIS,
                jarm={"authorization_signed_response_alg": "ES256", "require_jarm": True},
            ),
            "public": make_app(
                "code",
                client_type=Application.CLIENT_PUBLIC,
                redirect_uris=REDIRECT_URIS,
                jarm={"response_modes": ["jwt", "form_post.jwt", "query"]},
            ),
            "encrypted": make_app(
                "code token",
                redirect_uris=REDIRECT_URIS,
                jarm={"authorization_encrypted_response_alg": "RSA-OAEP-256", "jwks": public},
            ),
            "hmac": make_app(
                "code",
                redirect_uris=REDIRECT_URIS,
                hash_client_secret=False,
                client_secret=HMAC_SECRET,
                jarm={"authorization_signed_response_alg": "HS256"},
            ),
            "consent": make_app("code", redirect_uris=REDIRECT_URIS, skip_authorization=False),
            "consent-hybrid": make_app("code id_token token", redirect_uris=REDIRECT_URIS, skip_authorization=False),
        }
        yield Registered(apps=apps, rp_key=rp_key, jwks=jwks(), issuer=discovery()["issuer"])


# The properties ------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self.inputs: list[tuple[str | None, str | None]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.script_bodies: list[str] = []
        self._in_script = False
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "form":
            self.forms.append(attributes)
        elif tag == "input":
            self.inputs.append((attributes.get("name"), attributes.get("value")))
        elif tag == "script":
            self.scripts.append(attributes)
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_bodies.append(data)


@dataclass
class Sent:
    """What one request carried: every value of every parameter (query and form)."""

    method: str
    values: dict[str, list[str]]

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    @property
    def asked_for_jwt(self) -> bool:
        return any(mode == "jwt" or mode.endswith(".jwt") for mode in self.all("response_mode"))


def _sent(method: str, *parts: list[tuple[str, str]]) -> Sent:
    values: dict[str, list[str]] = {}
    for part in parts:
        for name, value in part:
            values.setdefault(name, []).append(value)
    return Sent(method, values)


def _fold_case(uri: str) -> str:
    """``uri`` with its scheme and authority lowercased: the only normalization allowed (RFC 3986 6.2.2.1).

    DOT compares hostnames case-insensitively, so ``https://RP.EXAMPLE/cb`` reaches the client at
    ``https://rp.example/cb``: the same endpoint.
    """
    scheme, colon, rest = uri.partition(":")
    if not colon or not rest.startswith("//"):
        return scheme.lower() + colon + rest
    end = next((index for index, char in enumerate(rest[2:], 2) if char in "/?#"), len(rest))
    return f"{scheme.lower()}://{rest[2:end].lower()}{rest[end:]}"


def _strip_response(location: str, registered_uris: list[str]) -> str | None:
    """The registered URI ``location`` goes to, once the response parameters are removed; None if none."""
    target = _fold_case(location.split("#", 1)[0])
    for uri in registered_uris:
        if target == _fold_case(uri):
            return uri
        if not target.startswith(_fold_case(uri)):
            continue
        rest = target[len(uri) :]
        if rest[:1] not in ("?", "&") or (rest[0] == "&") != ("?" in uri):
            continue
        names = [name for name, _ in parse_qsl(rest[1:], keep_blank_values=True)]
        if names and set(names) <= RESPONSE_PARAMETERS:
            return uri
    return None


def _decode_segment(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _verify_jwt(token: str, app: Any, registered: Registered) -> dict[str, Any]:
    """joserfc's verdict on a response JWT for ``app`` (decrypting it first when it is a JWE)."""
    assert re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){2,4}", token), token[:80]
    if token.count(".") == 4:
        token = _decrypt(token, app, registered)
    header = _decode_segment(token.split(".")[0])
    assert str(header.get("alg")).lower() != "none"
    verified = rp.verify_response(
        token,
        jwks=registered.jwks,
        issuer=registered.issuer,
        client_id=app.client_id,
        client_secret=getattr(app, "plain_secret", None),
    )
    return verified.claims


def _decrypt(token: str, app: Any, registered: Registered) -> str:
    """The nested JWS of an encrypted response, decrypted as the client would (JARM 2.4 step 1)."""
    settings_row = ClientSettings.objects.get(application=app)
    alg, enc = settings_row.authorization_encrypted_response_alg, settings_row.encryption_enc
    header = _decode_segment(token.split(".")[0])
    assert (header["alg"], header["enc"], header["cty"]) == (alg, enc, "JWT")
    if alg in SYMMETRIC_ENCRYPTION_ALGS:
        candidates: list[Any] = [OctKey.import_key(rp.derive_secret_key(app.plain_secret, alg, enc))]
    else:
        candidates = [registered.rp_key, *REAL_PRIVATE_KEYS]
    for key in candidates:
        try:
            return rp.decrypt_response(token, key, alg=alg, enc=enc)[1]
        except Exception:
            continue
    pytest.fail(f"no key of the client decrypts the {alg}/{enc} response")


def _event(label: str) -> None:
    if currently_in_test_context():
        event(label)


def check_answer(response: Any, sent: Sent, registered: Registered) -> None:
    """Assert every property of the module docstring on one answer of the authorization endpoint."""
    status = response.status_code
    _event(f"HTTP {status}")
    assert status < 500, (status, sent)
    # The client a request names: the last client_id value, as Django's QueryDict and DOT's form read it
    # (oauthlib refuses a repeated client_id in the URL outright).
    client_ids = sent.all("client_id")
    named = registered.by_client_id(client_ids[-1]) if client_ids else None
    registered_uris = named.redirect_uris.split() if named is not None else []
    content_type = response.get("Content-Type", "")
    body = response.content.decode("utf-8", errors="replace")

    if content_type.startswith("text/html"):
        # No page echoes a sent value that looks like markup.
        for values in sent.values.values():
            for value in values:
                if MARKUP.search(value):
                    assert value not in body, ("unescaped input in the page", value)

    params: list[tuple[str, str]] | None = None
    if status in (301, 302, 303, 307, 308):
        location = response["Location"]
        if location.startswith(settings.LOGIN_URL):
            _event("login redirect")
            return  # the login page of this server, never a response
        assert named is not None, ("redirect without a known client", location, sent)
        target = _strip_response(location, registered_uris)
        assert target is not None, ("redirect to an unregistered URI", location, registered_uris)
        assert "no-store" in response["Cache-Control"]
        parts = urlsplit(location)
        own = parse_qsl(urlsplit(target).query, keep_blank_values=True)
        query = parse_qsl(parts.query, keep_blank_values=True)
        assert query[: len(own)] == own, ("the registered URI's query was changed", location)
        if target != location.split("#", 1)[0][: len(target)]:
            _event("redirect URI matched case-insensitively")
        params = query[len(own) :] + parse_qsl(parts.fragment, keep_blank_values=True)
    elif status == 200 and "form-action" in response.get("Content-Security-Policy", ""):
        assert named is not None, ("form_post without a known client", sent)
        params = _check_form_post(response, body, registered_uris)
    if params is None:
        return

    names = [name for name, _ in params]
    assert set(names) <= RESPONSE_PARAMETERS, names
    app = named
    if "response" in names:
        assert names == ["response"], ("parameters beside the JWT", names)
        claims = _verify_jwt(params[0][1], app, registered)
        _event(f"verified JWT: {claims.get('error', 'success')}")
        states = sent.all("state")
        if "state" in claims and len(states) == 1:
            # DOT's consent form strips whitespace: test_consent_keeps_state_and_nonce_byte_for_byte.
            assert claims["state"] == states[0]
        return
    _event(f"plain: {dict(params).get('error', 'success')}{' (JWT asked)' if sent.asked_for_jwt else ''}")
    if sent.asked_for_jwt:
        plain = dict(params)
        assert plain.get("error") in ALLOWED_PLAIN_ERRORS, ("response in the clear to a JWT request", names, sent)
        assert not GRANT_PARAMETERS & set(plain), names
        assert set(plain) <= {"error", "error_description", "state"}, names


def _check_form_post(response: Any, body: str, registered_uris: list[str]) -> list[tuple[str, str]]:
    page = _Page()
    page.feed(body)
    page.close()
    assert len(page.forms) == 1, body[:500]
    form = page.forms[0]
    assert form.get("method") == "post"
    action = form.get("action") or ""
    folded = [_fold_case(uri) for uri in registered_uris]
    assert _fold_case(action) in folded, ("form_post to an unregistered URI", action, registered_uris)
    # One script, the auto-submit one, with the nonce of the CSP; no event handler attribute.
    assert len(re.findall(r"<script", body, flags=re.IGNORECASE)) == 1, body
    assert len(page.scripts) == 1
    assert "".join(page.script_bodies).strip() == "document.forms[0].submit();"
    assert page.handlers == []
    nonce = page.scripts[0].get("nonce")
    assert nonce
    csp = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == f"'nonce-{nonce}'"
    assert csp["default-src"] == "'none'"
    assert len(csp["form-action"].split()) == 1
    assert "no-store" in response["Cache-Control"]
    params = [(name, value or "") for name, value in page.inputs if name and name != "submit"]
    # Every value round-trips: what the browser posts is exactly what the server meant to send,
    # and the markup is exactly Django's escaping of it.
    for name, value in params:
        assert f'name="{escape(name)}" value="{escape(value)}"' in body, (name, value)
    assert f'action="{escape(action)}"' in body
    return params


# GET ----------------------------------------------------------------------------------------

CLIENT_KEYS = ["code", "hybrid", "implicit", "public", "encrypted", "hmac", "consent", "consent-hybrid"]


def _parameter(draw: Any, name: str, valid: Any, hostile: Any, *, absent: int = 5) -> list[tuple[str, str]]:
    """Mostly one valid value (so that requests get far), else absent, else hostile or repeated values."""
    roll = draw(st.integers(min_value=0, max_value=99))
    if roll < 75:
        return [(name, draw(valid))]
    if roll < 75 + absent:
        return []
    return [(name, value) for value in draw(hostile)]


@st.composite
def authorization_requests(draw: Any) -> tuple[str, bool, list[tuple[str, str]]]:
    """(client key, logged in, query); each parameter valid, absent, hostile or repeated."""
    client = draw(st.sampled_from(CLIENT_KEYS))
    logged_in = draw(st.integers(min_value=0, max_value=4)) > 0
    hostile_client_id = st.lists(st.one_of(st.just("<client>"), hostile_text), max_size=2)
    query = _parameter(draw, "client_id", st.just("<client>"), hostile_client_id, absent=2)
    query += _parameter(draw, "response_type", st.sampled_from(["<response_type>", "<response_type>"]), response_type)
    query += _parameter(draw, "redirect_uri", st.sampled_from([REDIRECT_URI, QUERY_REDIRECT_URI]), redirect_uri)
    query += _parameter(draw, "response_mode", known_modes, response_mode, absent=10)
    query += _parameter(draw, "scope", st.just("openid read"), scope)
    query += _parameter(draw, "state", st.just("af0ifjsldkj"), state)
    query += _parameter(draw, "nonce", st.just("n-0S6_WzA2Mj"), nonce)
    query += _parameter(
        draw, "prompt", st.sampled_from(["none", "consent", "login", "select_account"]), prompt, absent=60
    )
    hostile_challenge = st.lists(st.one_of(st.just("<challenge>"), hostile_text), max_size=2)
    query += _parameter(draw, "code_challenge", st.just("<challenge>"), hostile_challenge)
    query += _parameter(draw, "code_challenge_method", st.just("S256"), code_challenge_method)
    return client, logged_in, draw(st.permutations(query))


def _response_type_of(app: Any) -> str:
    return next(rt for rt, grant in GRANT_OF_RESPONSE_TYPE.items() if grant == app.authorization_grant_type)


def _fill(query: list[tuple[str, str]], app: Any) -> list[tuple[str, str]]:
    _, challenge = rp.pkce_pair()
    placeholders = {"<client>": app.client_id, "<challenge>": challenge, "<response_type>": _response_type_of(app)}
    return [(name, placeholders.get(value, value)) for name, value in query]


def _agent(user: Any, logged_in: bool) -> Client:
    """A fresh browser, logged in to one session of ``user`` made once per test (no login per example)."""
    agent = Client()
    if logged_in:
        session_key = getattr(user, "_hostile_session_key", None)
        if session_key is None:
            login = Client()
            login.force_login(user)
            session_key = user._hostile_session_key = login.cookies[settings.SESSION_COOKIE_NAME].value
        agent.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return agent


@pytest.mark.fuzz
@pytest.mark.django_db
def test_hostile_authorization_requests(registered, user):
    @examples(250)
    @given(authorization_requests())
    def run(request: tuple[str, bool, list[tuple[str, str]]]) -> None:
        client, logged_in, query = request
        query = _fill(query, registered.apps[client])
        response = _agent(user, logged_in).get("/o/authorize/?" + urlencode(query))
        check_answer(response, _sent("GET", query), registered)

    with override_settings(JARM=JARM_SETTINGS):  # once: a settings change reloads every key
        run()


@pytest.mark.fuzz
@pytest.mark.django_db
def test_hostile_requests_with_one_known_mode(registered, user):
    """The same, with well-formed requests in every known mode and one hostile parameter at a time."""

    @examples(150)
    @given(
        st.sampled_from(CLIENT_KEYS),
        st.integers(min_value=0, max_value=4).map(bool),
        st.sampled_from(ALL_RESPONSE_MODES),
        st.sampled_from(["state", "nonce", "redirect_uri", "scope", "prompt", "code_challenge", "response_type"]),
        st.one_of(hostile_text, st.sampled_from(HOSTILE_REDIRECT_URIS)),
    )
    def run(client: str, logged_in: bool, mode: str, name: str, value: str) -> None:
        app = registered.apps[client]
        _, challenge = rp.pkce_pair()
        response_type = _response_type_of(app)
        fields = {
            "client_id": app.client_id,
            "response_type": response_type,
            "redirect_uri": REDIRECT_URI,
            "response_mode": mode,
            "scope": "openid read",
            "state": "af0ifjsldkj",
            "nonce": "n-0S6_WzA2Mj",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            name: value,
        }
        query = list(fields.items())
        response = _agent(user, logged_in).get("/o/authorize/?" + urlencode(query))
        check_answer(response, _sent("GET", query), registered)

    with override_settings(JARM=JARM_SETTINGS):
        run()


# Raw query strings --------------------------------------------------------------------------------

#: Pieces of a raw query string: plain characters, every percent-escape, broken escapes, separators
#: and raw bytes (a WSGI server hands them over as latin-1).
raw_piece = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-._~", min_size=1, max_size=5),
    st.integers(min_value=0, max_value=255).map(lambda byte: f"%{byte:02X}"),
    st.integers(min_value=0, max_value=255).map(lambda byte: f"%{byte:02x}"),
    st.sampled_from(["%", "%z", "%zz", "%4", "%%", "%u00e9", "%C3", "%E2%82", "%ED%A0%80", "%F4%90%80%80"]),
    st.sampled_from(["+", ";", "&", "=", "&&", "%26", "%3D", "%2B", "%00", " ", '"', "<", "\\", "|", "^", "`"]),
    st.binary(min_size=1, max_size=3).map(lambda raw: raw.decode("latin-1")),
    st.text(max_size=3).map(lambda text: text.encode("utf-8").decode("latin-1")),  # raw UTF-8
)
raw_value = st.lists(raw_piece, max_size=6).map("".join)


@st.composite
def raw_authorization_requests(draw: Any) -> tuple[str, bool, list[tuple[str, str]], list[str]]:
    """(client key, logged in, a valid query, raw replacements): some values or names replaced by raw text."""
    client = draw(st.sampled_from(CLIENT_KEYS))
    logged_in = draw(st.booleans())
    query: list[tuple[str, str]] = [
        ("client_id", "<client>"),
        ("response_type", "<response_type>"),
        ("redirect_uri", draw(st.sampled_from([REDIRECT_URI, QUERY_REDIRECT_URI]))),
        ("scope", "openid read"),
        ("state", "af0ifjsldkj"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", "<challenge>"),
        ("code_challenge_method", "S256"),
    ]
    mode = draw(st.sampled_from([*ALL_RESPONSE_MODES, ""]))
    if mode:
        query.append(("response_mode", mode))
    pieces = draw(st.lists(st.tuples(st.integers(min_value=0, max_value=len(query) + 2), raw_value), max_size=3))
    return client, logged_in, query, [f"{index}:{value}" for index, value in pieces]


#: A valid query in query.jwt, for the explicit examples of the raw query test.
RAW_EXAMPLE_QUERY = [
    ("client_id", "<client>"),
    ("response_type", "<response_type>"),
    ("redirect_uri", REDIRECT_URI),
    ("scope", "openid read"),
    ("state", "af0ifjsldkj"),
    ("nonce", "n-0S6_WzA2Mj"),
    ("code_challenge", "<challenge>"),
    ("code_challenge_method", "S256"),
    ("response_mode", "query.jwt"),
]


def _raw_query(query: list[tuple[str, str]], pieces: list[str]) -> str:
    """The query, urlencoded, with each piece replacing one value (or appended as a raw pair)."""
    encoded = [f"{quote(name)}={quote(value, safe='')}" for name, value in query]
    for piece in pieces:
        index_text, _, value = piece.partition(":")
        index = int(index_text)
        if index < len(encoded):
            encoded[index] = encoded[index].split("=", 1)[0] + "=" + value
        elif index == len(encoded):
            encoded.append(value)  # a raw pair: name and all
        else:
            encoded.append("state=" + value)  # a repeated parameter
    return "&".join(encoded)


@pytest.mark.fuzz
@pytest.mark.django_db
def test_hostile_raw_query_strings(registered, user):
    """Raw bytes at the HTTP layer: an error page for malformed ones, every property for the rest."""
    from django.http import QueryDict

    from django_jarm.request_checks import encoding_problem, storage_problem

    @examples(200)
    @given(raw_authorization_requests())
    # Found by a fresh-seed run: raw UTF-8 in the state came back re-encoded ("Â\x80" for "\x80").
    @example(("code", True, RAW_EXAMPLE_QUERY, ["4:\xc2\x80"]))
    @example(("code", False, RAW_EXAMPLE_QUERY, ["5:\xc3\xa9t\xc3\xa9"]))
    def run(request: tuple[str, bool, list[tuple[str, str]], list[str]]) -> None:
        client, logged_in, query, pieces = request
        raw = _raw_query(_fill(query, registered.apps[client]), pieces)
        response = _agent(user, logged_in).get("/o/authorize/", QUERY_STRING=raw)
        raw_bytes = raw.encode("latin-1")
        # RFC 3986 3.4: raw (not percent-encoded) bytes outside ASCII are refused too.
        if encoding_problem(raw_bytes) or storage_problem(raw_bytes) or not raw_bytes.isascii():
            _event("refused raw")
            assert response.status_code == 400, response.status_code
            assert "Location" not in response
            return
        decoded = [(name, value) for name, values in QueryDict(raw_bytes).lists() for value in values]
        check_answer(response, _sent("GET", decoded), registered)

    with override_settings(JARM=JARM_SETTINGS):
        run()


# The consent POST -------------------------------------------------------------------------------

FORM_FIELDS = ["redirect_uri", "scope", "nonce", "client_id", "state", "response_type", "response_mode"]
FORM_FIELDS += ["code_challenge", "code_challenge_method", "claims", "resource"]


@st.composite
def tampered_consent(draw: Any) -> tuple[str, str, dict[str, list[str]], list[tuple[str, str]], bool]:
    """(client key, mode of the GET, changes to the hidden fields, query of the POST URL, allow)."""
    client = draw(st.sampled_from(["consent", "consent-hybrid"]))
    mode = draw(st.sampled_from([*ALL_RESPONSE_MODES, ""]))
    changes: dict[str, list[str]] = {}
    for name in draw(st.lists(st.sampled_from(FORM_FIELDS), max_size=2, unique=True)):
        if name == "response_mode":
            values = draw(response_mode)
        elif name == "response_type":
            values = draw(response_type)
        elif name == "redirect_uri":
            values = draw(redirect_uri)
        elif name == "client_id":
            values = draw(st.lists(st.one_of(st.sampled_from(["<other>", "<client>"]), hostile_text), max_size=2))
        else:
            values = draw(st.lists(hostile_text, max_size=2))
        changes[name] = values
    url_query = [("response_mode", value) for value in draw(st.lists(response_mode_value, max_size=2))]
    return client, mode, changes, url_query, draw(st.booleans())


@pytest.mark.fuzz
@pytest.mark.django_db
def test_tampered_consent_posts(registered, user):
    @examples(120)
    @given(tampered_consent())
    def run(example: tuple[str, str, dict[str, list[str]], list[tuple[str, str]], bool]) -> None:
        client, mode, changes, url_query, allow = example
        app = registered.apps[client]
        response_type = "code" if client == "consent" else "code id_token token"
        _, challenge = rp.pkce_pair()
        query = [
            ("client_id", app.client_id),
            ("response_type", response_type),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid read"),
            ("state", "st-" + secrets.token_hex(4)),
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]
        if mode:
            query.append(("response_mode", mode))
        agent = _agent(user, True)
        page = agent.get("/o/authorize/?" + urlencode(query))
        check_answer(page, _sent("GET", query), registered)
        if page.status_code != 200 or "form" not in (page.context or {}):
            return
        form = page.context["form"]
        data = [(name, str(form[name].value() or "")) for name in form.fields if name != "allow"]
        placeholders = {"<client>": app.client_id, "<other>": registered.apps["code"].client_id}
        data = [(name, value) for name, value in data if name not in changes]
        for name, values in changes.items():
            data += [(name, placeholders.get(value, value)) for value in values]
        if allow:
            data.append(("allow", "Authorize"))
        url = "/o/authorize/" + ("?" + urlencode(url_query) if url_query else "")
        response = agent.post(url, urlencode(data), content_type="application/x-www-form-urlencoded")
        check_answer(response, _sent("POST", data, url_query), registered)

    with override_settings(JARM=JARM_SETTINGS):
        run()


# Fixed XSS cases -----------------------------------------------------------------------------

XSS_STATES = [
    '"><script>alert(1)</script>',
    "'><svg onload=alert(1)>",
    "</script><script>alert(1)</script>",
    "</form><form action=https://evil.example><button>",
    "javascript:alert(1)",
    "\r\n\r\n<script>alert(1)</script>",
    '<!--"--><script>alert(1)</script>',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
]


@pytest.mark.django_db
@pytest.mark.parametrize("state_value", XSS_STATES)
@pytest.mark.parametrize("mode", ["form_post", "form_post.jwt"])
def test_form_post_state_injection(registered, browser, state_value, mode):
    app = registered.apps["code"]
    _, challenge = rp.pkce_pair()
    query = [
        ("client_id", app.client_id),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid read"),
        ("state", state_value),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("response_mode", mode),
    ]
    with override_settings(JARM=JARM_SETTINGS):
        response = browser.get("/o/authorize/?" + urlencode(query))
    assert response.status_code == 200
    check_answer(response, _sent("GET", query), registered)
    _, _, inputs, _ = rp.parse_form_post(response.content.decode())
    if mode == "form_post":
        assert dict(inputs)["state"] == state_value
    else:
        claims = _verify_jwt(dict(inputs)["response"], app, registered)
        assert claims["state"] == state_value


#: Registered redirect URIs with characters that mean something in HTML; RFC 3986 allows ' ( ) ; = in them.
XSS_REDIRECT_URIS = [
    "https://rp.example/cb?q='onmouseover='alert(1)",
    "https://rp.example/it's/cb?a='&b=(1)",
    "https://rp.example/cb?q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
    "https://rp.example/cb?q=&amp;x=1&lt;=2",
    "com.example.app:/cb?q='x'",
]
#: Characters RFC 3986 does not allow in a URI: oauthlib refuses such a redirect_uri outright.
INVALID_REDIRECT_URIS = [
    'https://rp.example/cb?q="><script>alert(1)</script>',
    "https://rp.example/cb?q=</form><script>alert(1)</script>",
    'https://rp.example/c"b',
]


@pytest.mark.django_db
@pytest.mark.parametrize("uri", XSS_REDIRECT_URIS)
@pytest.mark.parametrize("mode", ["form_post", "form_post.jwt", "query.jwt"])
def test_registered_redirect_uri_with_markup(make_app, browser, jwks, discovery, uri, mode):
    app = make_app("code", redirect_uris=uri)
    registered = Registered(apps={"app": app}, rp_key=None, jwks=jwks(), issuer=discovery()["issuer"])
    query = _query(app, uri, mode)
    response = browser.get("/o/authorize/?" + urlencode(query))
    assert response.status_code == (200 if mode.startswith("form_post") else 302)
    check_answer(response, _sent("GET", query), registered)
    if mode.startswith("form_post"):
        action, _, inputs, _ = rp.parse_form_post(response.content.decode())
        assert action == uri
        assert "'" not in response.content.decode().split("<form", 1)[1].split(">", 1)[0]
        if mode == "form_post":
            assert dict(inputs)["state"] == "af0ifjsldkj"
    else:
        assert response["Location"].startswith(uri + "&response=")


@pytest.mark.django_db
@pytest.mark.parametrize("uri", INVALID_REDIRECT_URIS)
@pytest.mark.parametrize("mode", ["form_post", "form_post.jwt"])
def test_registered_redirect_uri_that_is_no_uri_is_never_used(make_app, browser, uri, mode):
    app = make_app("code", redirect_uris=uri)
    response = browser.get("/o/authorize/?" + urlencode(_query(app, uri, mode)))
    assert response.status_code == 400
    assert "Location" not in response
    assert "<script>alert" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("uri", ["https://rp.example;sandbox/cb", "https://rp.example,script-src/cb"])
def test_redirect_uri_authority_cannot_add_csp_directives(make_app, browser, uri):
    app = make_app("code", redirect_uris=uri)
    response = browser.get("/o/authorize/?" + urlencode(_query(app, uri, "form_post.jwt")))
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    directives = [part.strip().split(" ", 1)[0] for part in policy.split(";")]
    assert directives == ["default-src", "script-src", "style-src", "form-action", "frame-ancestors", "base-uri"]
    assert "," not in policy


def _query(app: Any, redirect_uri: str, mode: str, state_value: str = "af0ifjsldkj") -> list[tuple[str, str]]:
    _, challenge = rp.pkce_pair()
    return [
        ("client_id", app.client_id),
        ("response_type", "code"),
        ("redirect_uri", redirect_uri),
        ("scope", "openid read"),
        ("state", state_value),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("response_mode", mode),
    ]


# Algorithm confusion ----------------------------------------------------------------------------

HMAC_ENABLED = {"SIGNING_ALGS_SUPPORTED": ["RS256", "HS256", "HS384", "HS512"]}


def _answer(agent: Client, app: Any, mode: str = "jwt", response_type: str = "code") -> rp.Delivery:
    _, challenge = rp.pkce_pair()
    query = {
        "client_id": app.client_id,
        "response_type": response_type,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid read",
        "state": "af0ifjsldkj",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": mode,
    }
    return rp.delivery_of(agent.get("/o/authorize/?" + urlencode(query)), REDIRECT_URI)


def _assert_plain_server_error(delivery: rp.Delivery) -> None:
    params = dict(delivery.params)
    assert params["error"] == "server_error", params
    assert set(params) == {"error", "error_description", "state"}


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_for_a_public_client_is_refused(make_app, browser, alg):
    app = make_app("code", client_type=Application.CLIENT_PUBLIC, hash_client_secret=False, client_secret="s" * 64)
    with override_settings(JARM=HMAC_ENABLED):
        row = ClientSettings(application=app, authorization_signed_response_alg=alg)
        with pytest.raises(ValidationError) as excinfo:
            row.full_clean()
        assert "authorization_signed_response_alg" in excinfo.value.message_dict
        assert "confidential" in " ".join(excinfo.value.message_dict["authorization_signed_response_alg"])
        row.save()  # as if written around clean(): the request must still refuse to sign with HS*
        for mode in JWT_MODES:
            _assert_plain_server_error(_answer(browser, app, mode))


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", " none"])
def test_none_in_client_settings_is_refused(make_app, browser, jwks, discovery, alg):
    app = make_app("code")
    row = ClientSettings(application=app, authorization_signed_response_alg=alg)
    if alg == "":
        row.full_clean()  # empty means the server default
    else:
        with pytest.raises(ValidationError) as excinfo:
            row.full_clean()
        assert "authorization_signed_response_alg" in excinfo.value.message_dict
    row.save()
    for mode in JWT_MODES:
        delivery = _answer(browser, app, mode)
        if alg == "":
            token = rp.jwt_of(delivery)
            assert _decode_segment(token.split(".")[0])["alg"] == "RS256"
        else:
            _assert_plain_server_error(delivery)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "jarm",
    [
        {"DEFAULT_SIGNING_ALG": "none"},
        {"DEFAULT_SIGNING_ALG": "none", "SIGNING_ALGS_SUPPORTED": ["none", "RS256"]},
        {"SIGNING_ALGS_SUPPORTED": ["none"]},
        {"DEFAULT_SIGNING_ALG": "RS256", "SIGNING_ALGS_SUPPORTED": ["none", "RS256"]},
    ],
    ids=["default-none", "default-none-enabled", "only-none", "none-enabled"],
)
@pytest.mark.parametrize("response_type", ["code", "code id_token", "id_token token"])
def test_none_in_server_settings_never_produces_an_unsigned_response(
    make_app, browser, jwks, discovery, jarm, response_type
):
    app = make_app(response_type)
    with override_settings(JARM=jarm):
        assert "none" not in discovery()["authorization_signing_alg_values_supported"]
        for mode in JWT_MODES:
            if mode == "query.jwt" and response_type != "code":
                continue
            delivery = _answer(browser, app, mode, response_type)
            names = [name for name, _ in delivery.params]
            if names == ["response"]:
                token = delivery.params[0][1]
                assert _decode_segment(token.split(".")[0])["alg"] == "RS256"
                rp.verify_response(token, jwks=jwks(), issuer=ISSUER, client_id=app.client_id)
            else:
                _assert_plain_server_error(delivery)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("ECDH-ES", lambda: RSAKey.generate_key(2048)),
        ("ECDH-ES+A256KW", lambda: RSAKey.generate_key(2048, parameters={"use": "enc"})),
        ("RSA-OAEP", lambda: ECKey.generate_key("P-256")),
        ("RSA-OAEP-256", lambda: ECKey.generate_key("P-256", parameters={"alg": "RSA-OAEP-256"})),
        ("ECDH-ES", lambda: ECKey.generate_key("P-256", parameters={"use": "sig"})),
    ],
    ids=["rsa-for-ecdh", "rsa-for-ecdh-kw", "ec-for-rsa-oaep", "ec-marked-rsa", "sig-key-for-ecdh"],
)
def test_client_key_of_the_wrong_type_for_the_encryption_alg(make_app, browser, alg, key):
    app = make_app("code")
    jwks = {"keys": [key().as_dict(private=False)]}
    row = ClientSettings(application=app, authorization_encrypted_response_alg=alg, jwks=jwks)
    with pytest.raises(ValidationError) as excinfo:
        row.full_clean()
    assert "jwks" in excinfo.value.message_dict
    row.save()
    for mode in JWT_MODES:
        _assert_plain_server_error(_answer(browser, app, mode))


@pytest.mark.django_db
def test_symmetric_key_in_client_jwks_is_refused(make_app):
    app = make_app("code")
    jwks = {"keys": [OctKey.generate_key(256).as_dict(private=True)]}
    row = ClientSettings(application=app, authorization_encrypted_response_alg="A256KW", jwks=jwks)
    with pytest.raises(ValidationError) as excinfo:
        row.full_clean()
    assert "jwks" in excinfo.value.message_dict


def _pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("alg", "make_key"),
    [
        ("PS256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("RS256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("PS256", lambda: ed25519.Ed25519PrivateKey.generate()),
        ("ES256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", lambda: ec.generate_private_key(ec.SECP384R1())),
        ("ES512", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("HS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("none", lambda: ec.generate_private_key(ec.SECP256R1())),
    ],
    ids=[
        "ec-for-ps256",
        "ec-for-rs256",
        "ed25519-for-ps256",
        "rsa-for-es256",
        "p384-for-es256",
        "p256-for-es512",
        "ec-for-eddsa",
        "rsa-for-eddsa",
        "rsa-for-hs256",
        "ec-for-none",
    ],
)
def test_server_key_of_the_wrong_type_is_refused_at_import(alg, make_key):
    with pytest.raises(ConfigurationError):
        import_server_key(_pem(make_key()), alg)
    from django_jarm.models import ServerKey

    assert not ServerKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["PS256", "ES256", "ES384", "ES512", "EdDSA", "RS512"])
@pytest.mark.parametrize("response_type", ["code", "code id_token token"])
def test_missing_server_key_is_plain_server_error(make_app, browser, alg, response_type):
    app = make_app(response_type, jarm={"authorization_signed_response_alg": alg})
    for mode in JWT_MODES:
        if mode == "query.jwt" and response_type != "code":
            continue
        delivery = _answer(browser, app, mode, response_type)
        _assert_plain_server_error(delivery)
        assert delivery.mode == {"form_post.jwt": "form_post", "fragment.jwt": "fragment"}.get(
            mode, "query" if response_type == "code" else "fragment"
        )


# Client settings ----------------------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
b64 = st.binary(min_size=1, max_size=64).map(lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
JWK_MEMBERS = ["kty", "use", "alg", "kid", "crv", "n", "e", "x", "y", "key_ops", "d", "k", "x5c"]
jwk_member_value = st.one_of(
    st.sampled_from(["RSA", "EC", "OKP", "oct", "enc", "sig", "P-256", "P-384", "X25519", "Ed25519", "AQAB"]),
    st.sampled_from([*ALL_ENCRYPTION_ALGS, "RSA1_5", "none"]),
    st.lists(st.sampled_from(["encrypt", "wrapKey", "deriveKey", "sign", "verify"]), max_size=3),
    b64,
    json_value,
)
random_jwk = st.dictionaries(st.sampled_from(JWK_MEMBERS), jwk_member_value, max_size=7)


#: Client keys the generated JWK Sets draw from; the test holds their private parts to decrypt.
REAL_PRIVATE_KEYS = [
    RSAKey.generate_key(2048),
    ECKey.generate_key("P-256"),
    ECKey.generate_key("P-384"),
    OKPKey.generate_key("X25519"),
]
#: Their public JWKs, plus one private JWK (which clean() must refuse).
REAL_KEYS = [key.as_dict(private=False) for key in REAL_PRIVATE_KEYS] + [REAL_PRIVATE_KEYS[0].as_dict(private=True)]
real_jwk = st.tuples(
    st.sampled_from(REAL_KEYS),
    st.dictionaries(st.sampled_from(["use", "alg", "kid", "key_ops", "crv"]), jwk_member_value, max_size=2),
).map(lambda pair: {**pair[0], **pair[1]})
HOSTILE_FIELDS: dict[str, Any] = {
    "authorization_signed_response_alg": st.one_of(
        st.sampled_from([*ALL_SIGNING_ALGS, "none", "None", "HS1", "RS256 ", "EdDSA"]), text
    ),
    "authorization_encrypted_response_alg": st.one_of(
        st.sampled_from([*ALL_ENCRYPTION_ALGS, "RSA1_5", "dir ", "none", "RSA-OAEP-512"]), text
    ),
    "authorization_encrypted_response_enc": st.one_of(st.sampled_from([*ALL_ENCRYPTION_ENCS, "A128CBC", "none"]), text),
    "jwks": st.one_of(
        st.just({}),
        json_value,
        st.builds(lambda keys: {"keys": keys}, st.lists(st.one_of(real_jwk, random_jwk, json_value), max_size=3)),
    ),
    "jwks_uri": st.one_of(
        st.sampled_from(
            [
                "https://jwks.invalid/",
                "https://jwks.invalid/keys?x=1",
                "http://jwks.invalid/",
                "https://127.0.0.1/jwks",
                "https://[::1]/jwks",
                "https://169.254.169.254/latest/meta-data",
                "https://user:pass@jwks.invalid/",
                "ftp://jwks.invalid/",
                "javascript:alert(1)",
                "file:///etc/passwd",
                "https://jwks.invalid:99999/",
                "https://" + "a" * 2000 + ".invalid/",
            ]
        ),
        st.builds(lambda name: f"https://{name}.invalid/jwks", st.text(alphabet=string.ascii_lowercase, min_size=1)),
        text,
    ),
    "response_modes": st.one_of(
        st.lists(st.sampled_from([*ALL_RESPONSE_MODES, "web_message", "", "JWT"]), max_size=4), json_value
    ),
}


@st.composite
def client_settings_fields(draw: Any) -> dict[str, Any]:
    """Mostly coherent ClientSettings fields (so that many pass clean()), each hostile one time in eight."""
    encryption = draw(st.sampled_from(["none", "none", "jwks", "jwks_uri", "secret"]))
    fields: dict[str, Any] = {
        "authorization_signed_response_alg": draw(st.sampled_from(["", "", "RS256", "PS256", "ES256", "HS256"])),
        "authorization_encrypted_response_alg": "",
        "authorization_encrypted_response_enc": "",
        "jwks": None,
        "jwks_uri": "",
        "response_modes": draw(st.lists(st.sampled_from(ALL_RESPONSE_MODES), max_size=3)),
        "require_jarm": draw(st.booleans()),
    }
    enc = draw(st.sampled_from(["", *ALL_ENCRYPTION_ENCS]))
    if encryption == "jwks":
        fields["authorization_encrypted_response_alg"] = draw(st.sampled_from(ASYMMETRIC_ENCRYPTION_ALGS))
        fields["authorization_encrypted_response_enc"] = enc
        fields["jwks"] = {"keys": draw(st.lists(real_jwk, min_size=1, max_size=2))}
    elif encryption == "jwks_uri":
        fields["authorization_encrypted_response_alg"] = draw(st.sampled_from(ASYMMETRIC_ENCRYPTION_ALGS))
        fields["authorization_encrypted_response_enc"] = enc
        fields["jwks_uri"] = "https://jwks.invalid/" + draw(st.text(alphabet=string.ascii_lowercase, max_size=8))
    elif encryption == "secret":
        fields["authorization_encrypted_response_alg"] = draw(st.sampled_from(SYMMETRIC_ENCRYPTION_ALGS))
        fields["authorization_encrypted_response_enc"] = enc
    for name, hostile in HOSTILE_FIELDS.items():
        if draw(st.integers(min_value=0, max_value=7)) == 0:
            fields[name] = draw(hostile)
    return fields


@pytest.mark.fuzz
@pytest.mark.django_db
def test_generated_client_settings(registered, user):
    apps = [registered.apps[name] for name in ("code", "public", "hmac", "implicit")]

    @examples(200)
    @given(st.sampled_from(range(len(apps))), client_settings_fields(), st.sampled_from(JWT_MODES))
    def run(index: int, fields: dict[str, Any], mode: str) -> None:
        app = apps[index]
        ClientSettings.objects.filter(application=app).delete()
        row = ClientSettings(application=app, **fields)
        try:
            row.full_clean()
        except ValidationError:
            return
        row.save()
        app.refresh_from_db()
        response_type = _response_type_of(app)
        _, challenge = rp.pkce_pair()
        query = [
            ("client_id", app.client_id),
            ("response_type", response_type),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid read"),
            ("state", "af0ifjsldkj"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("response_mode", mode),
        ]
        response = _agent(user, True).get("/o/authorize/?" + urlencode(query))
        check_answer(response, _sent("GET", query), registered)

    with override_settings(JARM=JARM_SETTINGS):
        run()


@pytest.mark.django_db
@pytest.mark.parametrize("enc", ["A128CBC", "A128CBC-HS256 ", "none"])
@pytest.mark.parametrize("client_type", [Application.CLIENT_CONFIDENTIAL, Application.CLIENT_PUBLIC])
def test_dir_with_an_unknown_enc_is_a_validation_error(make_app, enc, client_type):
    app = make_app("code", client_type=client_type, hash_client_secret=False, client_secret="s" * 64)
    row = ClientSettings(
        application=app, authorization_encrypted_response_alg="dir", authorization_encrypted_response_enc=enc
    )
    with pytest.raises(ValidationError) as excinfo:
        row.full_clean()
    assert "authorization_encrypted_response_enc" in excinfo.value.message_dict


MALFORMED_KEY_MEMBERS = [
    pytest.param({"kty": "EC", "crv": ["P-256"], "x": "AA", "y": "AA"}, "ECDH-ES", id="crv-list-ECDH-ES"),
    pytest.param({"kty": "EC", "crv": {"name": "P-256"}, "x": "AA", "y": "AA"}, "ECDH-ES+A128KW", id="crv-object"),
    pytest.param({"kty": "RSA", "n": "AA", "e": "AQAB", "key_ops": 1}, "RSA-OAEP", id="key_ops-number"),
    pytest.param({"kty": "RSA", "n": "AA", "e": "AQAB", "key_ops": [["wrapKey"]]}, "RSA-OAEP-256", id="key_ops-nested"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "alg"), MALFORMED_KEY_MEMBERS)
def test_malformed_jwk_members_are_a_validation_error(make_app, key, alg):
    app = make_app("code")
    row = ClientSettings(application=app, authorization_encrypted_response_alg=alg, jwks={"keys": [key]})
    with pytest.raises(ValidationError):
        row.full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "alg"), MALFORMED_KEY_MEMBERS)
def test_malformed_jwk_members_in_stored_jwks_are_a_server_error(make_app, browser, key, alg):
    app = make_app("code", jarm={"authorization_encrypted_response_alg": alg, "jwks": {"keys": [key]}})
    _assert_plain_server_error(_answer(browser, app, "jwt"))


@pytest.fixture
def jwks_server() -> Iterator[Any]:
    from tests.test_client_keys import JWKSServer

    server = JWKSServer()
    yield server
    server.close()


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "alg"), MALFORMED_KEY_MEMBERS)
def test_malformed_jwk_members_served_at_jwks_uri_are_a_server_error(make_app, browser, jwks_server, key, alg):
    from tests.test_client_keys import LOCAL

    uri = jwks_server.serve("/jwks", {"keys": [key]})
    app = make_app("code", jarm={"authorization_encrypted_response_alg": alg, "jwks_uri": uri})
    with override_settings(JARM=LOCAL):
        _assert_plain_server_error(_answer(browser, app, "jwt"))


@pytest.mark.django_db
@pytest.mark.parametrize("kid", [1, 1.5, ["k"], {"k": 1}, None])
def test_non_string_kid_is_a_validation_error(make_app, kid):
    key = RSAKey.generate_key(2048).as_dict(private=False)
    row = ClientSettings(
        application=make_app("code"),
        authorization_encrypted_response_alg="RSA-OAEP",
        jwks={"keys": [{**key, "kid": kid}]},
    )
    with pytest.raises(ValidationError):
        row.full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize("kid", [1, ["k"]])
def test_non_string_kid_in_client_jwks(make_app, browser, kid):
    """RFC 7517 4.5: a kid is a string. Such a key is never used: server_error, never a 500."""
    rp_key = RSAKey.generate_key(2048)
    app = make_app(
        "code",
        jarm={
            "authorization_encrypted_response_alg": "RSA-OAEP",
            "jwks": {"keys": [{**rp_key.as_dict(private=False), "kid": kid}]},
        },
    )
    params = dict(_answer(browser, app, "jwt").params)
    assert params["error"] == "server_error"
    assert "code" not in params


@pytest.mark.django_db
@pytest.mark.parametrize("value", [" st-1", "st-2 ", "\tst-3\n"])
def test_consent_keeps_state_and_nonce_byte_for_byte(make_app, browser, jwks, discovery, value):
    app = make_app("code id_token", skip_authorization=False)
    registered = Registered(apps={"app": app}, rp_key=None, jwks=jwks(), issuer=discovery()["issuer"])
    _, challenge = rp.pkce_pair()
    query = {
        "client_id": app.client_id,
        "response_type": "code id_token",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid read",
        "state": value,
        "nonce": "n" + value,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": "jwt",
    }
    page = browser.get("/o/authorize/?" + urlencode(query))
    assert page.status_code == 200
    form = page.context["form"]
    data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
    assert data["state"] == value  # the page holds the exact value
    response = browser.post("/o/authorize/", {**data, "allow": "Authorize"})
    claims = _verify_jwt(rp.jwt_of(rp.delivery_of(response, REDIRECT_URI)), app, registered)
    id_token = _decode_segment(claims["id_token"].split(".")[1])
    assert (claims["state"], id_token["nonce"]) == (value, "n" + value)


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["", "query", "form_post"])
@pytest.mark.parametrize("allow", [True, False])
def test_tampered_resource_on_consent_post(make_app, browser, mode, allow):
    app = make_app("code", skip_authorization=False)
    page = browser.get("/o/authorize/?" + urlencode(_query(app, REDIRECT_URI, mode)))
    form = page.context["form"]
    data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
    data.update({"redirect_uri": "https://attacker.example/cb", "resource": "not a resource indicator"})
    if allow:
        data["allow"] = "Authorize"
    response = browser.post("/o/authorize/", data)
    assert response.status_code == 400, response.get("Location")
    assert "Location" not in response


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["jwt", "form_post.jwt"])
def test_invalid_resource_on_consent_post_is_wrapped(make_app, browser, verify, mode):
    app = make_app("code", skip_authorization=False)
    page = browser.get("/o/authorize/?" + urlencode(_query(app, REDIRECT_URI, mode)))
    form = page.context["form"]
    data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
    response = browser.post("/o/authorize/", {**data, "resource": "not-a-uri", "allow": "Authorize"})
    _, verified = verify(response, app)
    assert verified.params["error"] == "invalid_target"
    assert verified.params["state"] == "af0ifjsldkj"


# Raw query strings and bodies ----------------------------------------------------------------------

#: Raw query-string or body fragments no parser may turn into a 500 or a changed value: each is an
#: error page (400, no redirect: nothing is verified yet).
MALFORMED_RAW = [
    pytest.param("state=%zz", id="bad-escape"),
    pytest.param("state=%", id="lone-percent"),
    pytest.param("state=%2", id="truncated-escape"),
    pytest.param("state=%%41", id="double-percent"),
    pytest.param("state=%u0041", id="iis-unicode-escape"),
    pytest.param("%zz=1", id="bad-escape-in-name"),
    pytest.param("response_mode=jwt%zz", id="bad-escape-in-mode"),
    pytest.param("state=%ff", id="invalid-utf8-byte"),
    pytest.param("state=%c3%28", id="invalid-utf8-sequence"),
    pytest.param("state=%ed%a0%80", id="utf8-surrogate"),
    pytest.param("state=%c0%af", id="overlong-utf8"),
    pytest.param("state=%e2%82", id="truncated-utf8"),
    pytest.param("%ff=1", id="invalid-utf8-in-name"),
    pytest.param(b"state=\xff".decode("latin-1"), id="raw-invalid-byte"),
    pytest.param(b"state=\xc3\x28".decode("latin-1"), id="raw-invalid-sequence"),
    pytest.param("state=%00", id="encoded-nul"),
    pytest.param("st%00ate=1", id="nul-in-name"),
    pytest.param("nonce=" + "n" * 256, id="over-long-nonce"),
    pytest.param("n%6fnce=" + "n" * 256, id="over-long-encoded-name"),
    pytest.param("nonce=" + "%41" * 256, id="over-long-once-decoded"),
]


#: Valid UTF-8, but not percent-encoded: refused in a query string, where oauthlib would read
#: "Ã©" for "é" (found by a fuzzing run); a form body is decoded as UTF-8 and keeps its value.
RAW_NON_ASCII = [
    pytest.param("state=é".encode().decode("latin-1"), id="raw-utf8"),
    pytest.param(b"state=\xc2\x80".decode("latin-1"), id="raw-utf8-c1-control"),
]


def _raw_base(app: Any, mode: str) -> str:
    _, challenge = rp.pkce_pair()
    base = (
        f"client_id={app.client_id}&response_type=code&redirect_uri={REDIRECT_URI}&scope=openid"
        f"&code_challenge={challenge}&code_challenge_method=S256"
    )
    return base + (f"&response_mode={mode}" if mode else "")


def _assert_error_page(response: Any) -> None:
    assert response.status_code == 400
    assert "Location" not in response
    assert b"invalid_request" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("raw", MALFORMED_RAW + RAW_NON_ASCII)
@pytest.mark.parametrize("mode", ["jwt", "form_post.jwt", "query", ""])
def test_malformed_raw_query_is_an_error_page(make_app, browser, raw, mode):
    app = make_app("code")
    response = browser.get("/o/authorize/", QUERY_STRING=_raw_base(app, mode) + "&" + raw)
    _assert_error_page(response)


@pytest.mark.django_db
@pytest.mark.parametrize("raw", MALFORMED_RAW)
def test_malformed_raw_consent_body_is_an_error_page(make_app, browser, raw):
    app = make_app("code", skip_authorization=False)
    body = _raw_base(app, "jwt") + "&state=s-1&allow=Authorize&" + raw
    response = browser.post("/o/authorize/", body.encode("latin-1"), content_type="application/x-www-form-urlencoded")
    _assert_error_page(response)
    assert not get_grant_model().objects.exists()


@pytest.mark.django_db
def test_malformed_multipart_consent_body_is_an_error_page(make_app, browser):
    app = make_app("code", skip_authorization=False)
    fields = dict(parse_qsl(_raw_base(app, "jwt")))
    response = browser.post("/o/authorize/", {**fields, "state": "a\x00b", "allow": "Authorize"})  # multipart
    _assert_error_page(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("state=a+b", "a b"),
        ("state=a%2Bb", "a+b"),
        ("state=a;b", "a;b"),  # ";" separates nothing (Django, oauthlib and the WHATWG agree)
        ("state=%C3%A9t%C3%A9", "été"),
        ("state=%e2%80%a8", "\u2028"),
        ("=x&state=s", "s"),  # an empty name
        ("x=&state=s", "s"),  # an empty value
        ("state=s&=&=", "s"),  # empty names and values
        ("STATE=x&state=s", "s"),
        ("state=s&state%00=x".replace("%00", "%20"), "s"),
    ],
)
@pytest.mark.parametrize("mode", ["jwt", "query"])
def test_well_formed_raw_queries_keep_their_values(make_app, browser, verify, raw, state, mode):
    app = make_app("code")
    response = browser.get("/o/authorize/", QUERY_STRING=_raw_base(app, mode) + "&" + raw)
    if mode == "jwt":
        _, verified = verify(response, app)
        params = verified.params
    else:
        params = dict(rp.delivery_of(response, REDIRECT_URI).params)
    assert "code" in params
    assert params["state"] == state


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [
        "state=a&state=b",
        "state=&state=b",
        "response_mode=jwt&response_mode=jwt",
        "client_id=x",
        ";state=a&state",
        "&&state=s&&",  # empty pairs: oauthlib's strict parsing refuses them (DOT's error page)
        "state=s&x",
    ],
)
@pytest.mark.parametrize("mode", ["jwt", "query"])
def test_repeated_and_valueless_names_are_refused_never_a_500(make_app, browser, raw, mode):
    app = make_app("code")
    response = browser.get("/o/authorize/", QUERY_STRING=_raw_base(app, mode) + "&" + raw)
    assert response.status_code < 500
    if response.status_code in (302, 303):
        params = dict(rp.delivery_of(response, REDIRECT_URI).params)
        assert "code" not in params
        assert mode == "query" or "response" in params or params.get("error") == "invalid_request"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "request_target",
    [
        b"state=%zz",
        b"state=%ff",
        b"state=\xff\xfe",
        b"state=\xc3\x28",
        b"%zz",
        b"state=%E2%82",
        b"state=\xc3\xa9",
        b"nonce=\xc2\x80",
    ],
)
def test_malformed_raw_bytes_over_http(http_server, make_app, request_target):
    """The same over a real socket: the raw bytes as a client puts them on the request line."""
    import socket

    app = make_app("code")
    host, port = http_server
    target = b"/o/authorize/?" + _raw_base(app, "jwt").encode() + b"&" + request_target
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers = rest.split(b"\r\n\r\n", 1)[0].lower()
    assert status_line.split()[1] == b"400", answer[:300]
    assert b"\r\nlocation:" not in b"\r\n" + headers
    assert b"invalid_request" in answer
