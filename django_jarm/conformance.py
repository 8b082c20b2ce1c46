"""A certification dry run: the conformance suite's server-side JARM conditions, run here first.

The OpenID conformance suite (release line 5.2, ``condition/client/``) checks a JARM server's
discovery document, its JWK Set and every authorization response it sends. This module runs the
same conditions, named by the suite's class names, against what this server really serves:

* **server**: the discovery and RFC 8414 documents and the JWK Set, fetched through the URLconf
  from our own views (:func:`server_results`), or over HTTP from a running deployment
  (:func:`remote_server_results`, ``--base-url``);
* **per client** (:func:`client_results`): for every JWT response mode the client may use, a
  success and the errors ``access_denied`` and ``invalid_scope``, produced by the real
  authorization view (DOT's view with :class:`~django_jarm.views.JARMAuthorizationMixin`, so the
  same ``plan`` and ``deliver`` as every request) for a throwaway user, inside a transaction that
  is rolled back: no user, session, grant or token is left behind.

Each response is then checked as the suite checks it, from the HTTP answer only: the ``response``
parameter and nothing else, the JWE header, the signature by the served JWK Set and ``kid``, the
claims, the ``exp`` windows, the algorithms in the discovery lists.

Encrypted responses: like the suite (``ExtractJARMFromURLQuery``), a response encrypted with a key
derived from the client secret is decrypted with that key, which the server holds whenever it can
encrypt at all. A response encrypted to the client's public key cannot be decrypted here: the
server never holds the client's private key (the suite, acting as the client, does). Its JWE
header is checked (``ValidateJARMFromURLQueryEncryption``, ``ValidateJARMEncryptionAlg`` /
``Enc``) and the checks of the signed JWT inside are reported ``N/A`` with that reason.

This module verifies tokens as a client would, with jwcrypto's algorithm objects on the public
keys the JWK Set serves: the other JOSE boundary of the package, on the receiving side.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import router, transaction
from django.test import Client, RequestFactory
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from jwcrypto import jwe, jwk
from jwcrypto.common import JWException
from jwcrypto.jwa import JWA
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)
from oauth2_provider.settings import oauth2_settings

from .authorization import AuthorizationRequest, get_planner
from .client_keys import derive_secret_key
from .conf import SYMMETRIC_ENCRYPTION_ALGS, jarm_settings
from .keys import publication_wait, published_keys
from .profiles import normalise_response_type
from .response_modes import carries_tokens, jwt_mode_name
from .state import client_settings
from .tokens import SIGNING_KEY_TYPES

PASS, WARN, FAIL, NOT_APPLICABLE = "PASS", "WARN", "FAIL", "N/A"
STATUSES = (FAIL, WARN, NOT_APPLICABLE, PASS)

#: The concrete JWT response modes a flow is run in (``jwt`` resolves to one of them).
FLOW_MODES = ("query.jwt", "fragment.jwt", "form_post.jwt")
OUTCOMES = ("success", "access_denied", "invalid_scope")

#: Largest document accepted from a remote deployment, and the deadline of one fetch.
MAX_REMOTE_BYTES = 1024 * 1024
REMOTE_TIMEOUT = 10.0

STATE = "jarm-conformance-state"
NONCE = "jarm-conformance-nonce"
UNKNOWN_SCOPE = "jarm-conformance-unknown-scope"
#: Claims of the JWT itself (ExtractAuthorizationEndpointResponseFromJARMResponse drops them).
JWT_STANDARD_CLAIMS = frozenset({"sub", "aud", "exp", "nbf", "iat", "jti"})
SUCCESS_PARAMETERS = frozenset({"code", "state", "session_state", "iss"})
ERROR_PARAMETERS = frozenset({"error", "error_description", "error_uri", "state", "session_state", "iss"})
#: FAPI 1.0 Advanced 8.6; FAPI 2.0 Security Profile 5.4.1 (RFC 9864 names Ed25519).
FAPI1_SIGNING_ALGS = ("PS256", "ES256")
FAPI2_SIGNING_ALGS = ("PS256", "ES256", "EdDSA", "Ed25519")
#: Minimum key sizes of FAPI2FinalEnsureMinimumServerKeyLength.
MIN_RSA_BITS, MIN_EC_BITS = 2048, 224
EC_CURVE_BITS = {"P-256": 256, "P-384": 384, "P-521": 521, "secp256k1": 256}
KEY_TYPE_OF_ALG_PREFIX = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP", "HS": "oct"}

FIX_KEYS = (
    "Run `manage.py jarm_keys generate --alg ALG` for a fresh key and retire the faulty one (`jarm_keys retire KID`)."
)


@dataclass(frozen=True)
class CheckResult:
    """One condition on one subject: the server, or one client's response in one mode."""

    check: str
    status: str
    reason: str
    fix: str = ""
    #: ``server`` (in process), the base URL checked over HTTP, or ``client``.
    scope: str = "server"
    client_id: str = ""
    mode: str = ""
    outcome: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Report:
    results: list[CheckResult] = field(default_factory=list)

    def add(self, check: str, status: str, reason: str, fix: str = "", **scope: str) -> None:
        self.results.append(CheckResult(check, status, reason, fix if status != PASS else "", **scope))

    @property
    def failed(self) -> bool:
        return any(result.status == FAIL for result in self.results)


def _kty_of(alg: str) -> str:
    return KEY_TYPE_OF_ALG_PREFIX.get(alg[:2], "?")


def _b64json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _b64bytes(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# The served documents --------------------------------------------------------------------------


@dataclass
class Served:
    """The documents a client reads: where they came from, what they hold, what went wrong."""

    origin: str
    discovery: dict[str, Any] | None = None
    discovery_url: str = ""
    jwks: dict[str, Any] | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)


def _path(name: str) -> str | None:
    try:
        return reverse(f"oauth2_provider:{name}")
    except NoReverseMatch:
        return None


def discovery_paths() -> list[str]:
    """The paths of the discovery documents this URLconf serves: OpenID first when OIDC is on."""
    names = ["oidc-connect-discovery-info"] if oauth2_settings.OIDC_ENABLED else []
    names.append("oauth-server-metadata")
    return [path for path in map(_path, names) if path]


class InProcess:
    """Requests to our own views through the URLconf, as ``host`` (an ALLOWED_HOSTS entry) sees them."""

    def __init__(self, host: str | None = None, *, secure: bool | None = None) -> None:
        self.host = host or default_host()
        self.secure = _default_secure() if secure is None else secure
        self.origin = f"{'https' if self.secure else 'http'}://{self.host}"

    def client(self) -> Client:
        # raise_request_exception=False: a view that fails is a 500 we report, not a crash here.
        return Client(HTTP_HOST=self.host, raise_request_exception=False)

    def get_json(self, path: str) -> tuple[Any, str]:
        response = self.client().get(path, secure=self.secure)
        if response.status_code != 200:
            return None, f"{path} answered HTTP {response.status_code}"
        try:
            return json.loads(response.content), ""
        except ValueError:
            return None, f"{path} is not JSON"

    def served(self) -> list[Served]:
        """Every discovery document with the JWK Set it names (the JWKS view of this URLconf)."""
        documents = []
        jwks_path = _path("jwks-info")
        jwks, problem = self.get_json(jwks_path) if jwks_path else (None, "no JWKS view in the URLconf")
        for path in discovery_paths():
            data, doc_problem = self.get_json(path)
            served = Served(self.origin, discovery_url=self.origin + path)
            if doc_problem or not isinstance(data, dict):
                served.problems.append(("discovery", doc_problem or f"{path} is not a JSON object"))
            else:
                served.discovery = data
            if problem or not isinstance(jwks, dict):
                served.problems.append(("jwks", problem or "the JWK Set is not a JSON object"))
            else:
                served.jwks = jwks
            documents.append(served)
        return documents


def default_host() -> str:
    """The first concrete ALLOWED_HOSTS entry (``localhost`` when there is none)."""
    for host in django_settings.ALLOWED_HOSTS:
        if host and host != "*" and not host.startswith("."):
            return str(host)
    return "localhost"


def _default_secure() -> bool:
    return not django_settings.DEBUG


# Over HTTP: an untrusted peer -----------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a discovery document or JWK Set behind a redirect is reported, not followed


def fetch_json(url: str, *, timeout: float = REMOTE_TIMEOUT, max_bytes: int = MAX_REMOTE_BYTES) -> tuple[Any, str]:
    """``(document, "")`` or ``(None, why not)``: within ``timeout`` seconds and ``max_bytes``, never raising.

    The fetch runs in a daemon thread that is abandoned at the deadline: a peer trickling its
    headers or body one byte at a time cannot hold the caller longer than ``timeout``.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        return None, f"{url} is not an http(s) URL"
    outcome: list[tuple[Any, str]] = []

    def fetch() -> None:
        try:
            outcome.append(_fetch_json(url, timeout, max_bytes))
        except Exception as exc:  # a hostile peer's body (deeply nested JSON...) is a result, not a crash
            outcome.append((None, f"{url} cannot be read: {type(exc).__name__}"))

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return None, f"{url} did not answer within {timeout:g} s"
    return outcome[0]


def _fetch_json(url: str, timeout: float, max_bytes: int) -> tuple[Any, str]:
    opener = urllib.request.build_opener(_NoRedirect)
    # Only http(s) URLs get here (checked by fetch_json): no file: or custom schemes.
    request = urllib.request.Request(  # noqa: S310
        url, headers={"Accept": "application/json", "User-Agent": "django_jarm conformance"}
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return None, f"{url} redirects (HTTP {exc.code}); redirects are not followed: check the URL and the proxy"
        return None, f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
            return None, f"{url} did not answer within {timeout:g} s"
        return None, f"{url} cannot be fetched: {reason}"
    if len(body) > max_bytes:
        return None, f"{url} is larger than {max_bytes} bytes"
    try:
        return json.loads(body), ""
    except (ValueError, RecursionError):
        return None, f"{url} is not JSON (or nested too deeply)"


def remote_served(base_url: str, *, timeout: float = REMOTE_TIMEOUT) -> list[Served]:
    """The discovery documents under ``base_url`` (this URLconf's paths) and the JWK Sets they name."""
    base = base_url.rstrip("/")
    documents = []
    for path in discovery_paths():
        url = base + path
        served = Served(base, discovery_url=url)
        data, problem = fetch_json(url, timeout=timeout)
        if problem or not isinstance(data, dict):
            served.problems.append(("discovery", problem or f"{url} is not a JSON object"))
            documents.append(served)
            continue
        served.discovery = data
        jwks_uri = data.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            served.problems.append(("jwks", f"{url} names no jwks_uri"))
        else:
            jwks, problem = fetch_json(jwks_uri, timeout=timeout)
            if problem or not isinstance(jwks, dict):
                served.problems.append(("jwks", problem or f"{jwks_uri} is not a JSON object"))
            else:
                served.jwks = jwks
        documents.append(served)
    return documents


# Server conditions ---------------------------------------------------------------------------


def _server_keys(jwks: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        return None
    return keys


def _key_bits(key: Mapping[str, Any]) -> int | None:
    if key.get("kty") == "RSA" and isinstance(key.get("n"), str):
        try:
            return int.from_bytes(_b64bytes(key["n"]), "big").bit_length()
        except ValueError:
            return None
    if key.get("kty") == "EC":
        return EC_CURVE_BITS.get(str(key.get("crv")))
    return None


def check_served(served: Served, report: Report) -> None:
    """The suite's discovery and server-key conditions on one served document and its JWK Set."""
    scope = {"scope": served.discovery_url or served.origin}
    for what, problem in served.problems:
        name = "CheckServerConfiguration" if what == "discovery" else "FetchServerKeys"
        report.add(
            name,
            FAIL,
            problem,
            "Serve the document (check the URLconf includes django_jarm.urls, the proxy, ALLOWED_HOSTS).",
            **scope,
        )
    document = served.discovery
    if document is not None:
        modes = document.get("response_modes_supported")
        if isinstance(modes, list) and "jwt" in modes:
            report.add(
                "CheckDiscEndpointResponseModesSupportedContainsJwt",
                PASS,
                "response_modes_supported contains jwt.",
                **scope,
            )
        else:
            report.add(
                "CheckDiscEndpointResponseModesSupportedContainsJwt",
                FAIL,
                f"response_modes_supported is {json.dumps(modes)}, without jwt.",
                'Add "jwt" to JARM["RESPONSE_MODES_SUPPORTED"] (or remove the setting: every mode is supported '
                "by default).",
                **scope,
            )
        for member, name, setting in (
            (
                "authorization_signing_alg_values_supported",
                "CheckDiscEndpointAuthSignAlgValuesIsJsonArray",
                "SIGNING_ALGS_SUPPORTED",
            ),
            (
                "authorization_encryption_alg_values_supported",
                "CheckDiscEndpointAuthEncryptAlgValuesIsJsonArray",
                "ENCRYPTION_ALGS_SUPPORTED",
            ),
            (
                "authorization_encryption_enc_values_supported",
                "CheckDiscEndpointAuthEncryptEncValuesIsJsonArray",
                "ENCRYPTION_ENCS_SUPPORTED",
            ),
        ):
            if member not in document:
                report.add(name, PASS, f"{member} is absent (allowed).", **scope)
            elif isinstance(document[member], list) and all(isinstance(value, str) for value in document[member]):
                report.add(name, PASS, f"{member} is an array.", **scope)
            else:
                report.add(
                    name,
                    FAIL,
                    f"{member} is {json.dumps(document[member])[:80]}, not an array of strings.",
                    f'Set JARM["{setting}"] to a list, and check that no discovery override or proxy '
                    f"rewrites {member}.",
                    **scope,
                )
        if not isinstance(document.get("issuer"), str) or not document.get("issuer"):
            report.add(
                "CheckDiscEndpointIssuer",
                FAIL,
                "The document has no issuer.",
                'Set JARM["ISSUER"] or DOT\'s OIDC_ISS_ENDPOINT.',
                **scope,
            )
    if served.jwks is not None:
        jwks_scope = {"scope": f"{served.discovery_url or served.origin} jwks_uri"}
        if document is not None and isinstance(document.get("jwks_uri"), str):
            jwks_scope = {"scope": document["jwks_uri"]}
        if jwks_scope["scope"] not in {result.scope for result in report.results}:  # one JWK Set, checked once
            check_server_keys(served.jwks, report, jwks_scope)


def check_server_keys(jwks: Mapping[str, Any], report: Report, scope: dict[str, str]) -> None:
    keys = _server_keys(jwks)
    if keys is None:
        report.add(
            "FetchServerKeys",
            FAIL,
            'The JWK Set has no "keys" array of objects.',
            "Serve the JWK Set of django_jarm.urls (jwks-info).",
            **scope,
        )
        return
    no_kid = [index for index, key in enumerate(keys) if not isinstance(key.get("kid"), str) or not key.get("kid")]
    if no_kid:
        report.add(
            "CheckForKeyIdInServerJWKs",
            FAIL,
            f"{len(no_kid)} of {len(keys)} published keys have no kid (key #{', #'.join(map(str, no_kid))}).",
            FIX_KEYS + " Keys generated or imported by django_jarm always carry their thumbprint as kid.",
            **scope,
        )
    else:
        report.add("CheckForKeyIdInServerJWKs", PASS, f"All {len(keys)} published keys have a kid.", **scope)
    short = []
    for key in keys:
        bits = _key_bits(key)
        minimum = MIN_RSA_BITS if key.get("kty") == "RSA" else MIN_EC_BITS if key.get("kty") == "EC" else None
        if minimum is not None and (bits is None or bits < minimum):
            short.append(f"{key.get('kid', '?')} ({key.get('kty')} {bits or '?'} bits, at least {minimum})")
    if short:
        report.add(
            "FAPI2FinalEnsureMinimumServerKeyLength",
            FAIL,
            f"Keys below the minimum size: {'; '.join(short)}.",
            FIX_KEYS + " django_jarm generates RSA keys of 2048 bits; import only RSA >= 2048 and EC >= P-256.",
            **scope,
        )
    else:
        report.add(
            "FAPI2FinalEnsureMinimumServerKeyLength", PASS, "RSA keys >= 2048 bits, EC keys >= 224 bits.", **scope
        )
    seen: dict[tuple[Any, Any], int] = {}
    for key in keys:
        pair = (key.get("kid"), key.get("alg"))
        seen[pair] = seen.get(pair, 0) + 1
    duplicates = [f"kid {kid} alg {alg or '(none)'}" for (kid, alg), count in seen.items() if count > 1 and kid]
    if duplicates:
        report.add(
            "CheckServerJWKsUniqueKidAndAlg",
            FAIL,
            f"Several published keys share {'; '.join(duplicates)}: ValidateJARMSignatureUsingKid refuses them.",
            "Retire the duplicate (`manage.py jarm_keys retire KID`); check OIDC_RSA_PRIVATE_KEYS_INACTIVE for a "
            "copy of the active key.",
            **scope,
        )
    else:
        report.add("CheckServerJWKsUniqueKidAndAlg", PASS, "No two published keys share kid and alg.", **scope)
    mislabelled = []
    for key in keys:
        alg = key.get("alg")
        if alg is None:
            continue
        expected = _kty_of(str(alg))
        curve = SIGNING_KEY_TYPES.get(str(alg), ("", None))[1]  # the curve an ES* label names
        if expected != key.get("kty") or (key.get("kty") == "EC" and curve not in (None, key.get("crv"))):
            mislabelled.append(
                f"{key.get('kid', '?')} is a {key.get('kty')} {key.get('crv', '')} key labelled {alg}".replace(
                    "  ", " "
                )
            )
        if key.get("use") not in (None, "sig") and not str(alg).startswith(("RSA", "ECDH")):
            mislabelled.append(f"{key.get('kid', '?')} is labelled use={key.get('use')} but alg={alg}")
    if mislabelled:
        report.add(
            "CheckServerJWKsAlgMatchesKeyType",
            FAIL,
            "; ".join(mislabelled) + ".",
            "Import the key again with the algorithm it fits (`manage.py jarm_keys import FILE.pem --alg ALG`) and "
            "retire this one.",
            **scope,
        )
    else:
        report.add("CheckServerJWKsAlgMatchesKeyType", PASS, "Every alg label fits its key type (and curve).", **scope)


def server_results(host: str | None = None, *, secure: bool | None = None) -> Report:
    """The server conditions on the documents our own views serve (in process)."""
    report = Report()
    for served in InProcess(host, secure=secure).served():
        check_served(served, report)
    return report


def remote_server_results(base_url: str, *, timeout: float = REMOTE_TIMEOUT) -> Report:
    """The server conditions on the documents a running deployment serves at ``base_url``."""
    report = Report()
    for served in remote_served(base_url, timeout=timeout):
        check_served(served, report)
    return report


# One flow through the real authorization view ----------------------------------------------------


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append(
                {
                    "action": attributes.get("action") or "",
                    "method": (attributes.get("method") or "").lower(),
                    "inputs": [],
                }
            )
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1]["inputs"].append((attributes["name"], attributes.get("value") or ""))


@dataclass
class Delivery:
    """Where the response parameters arrived, read as a browser reads the answer."""

    #: ``query``, ``fragment``, ``form_post``; ``""`` when nothing reached the redirect URI.
    where: str
    #: The response parameters (the redirect URI's own query set aside).
    params: list[tuple[str, str]] = field(default_factory=list)
    #: What arrived instead, when nothing reached the redirect URI.
    problem: str = ""


def delivery_of(status: int, location: str, content_type: str, body: bytes, redirect_uri: str) -> Delivery:
    base = redirect_uri.split("?", 1)[0].split("#", 1)[0]
    if status in (301, 302, 303, 307, 308):
        if not location.startswith(base):
            return Delivery("", problem=f"HTTP {status} to another place than the redirect URI")
        parts = urlsplit(location)
        own = parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)
        query = parse_qsl(parts.query, keep_blank_values=True)
        for pair in own:
            if pair in query:
                query.remove(pair)
        fragment = parse_qsl(parts.fragment, keep_blank_values=True)
        if fragment:
            return Delivery("fragment", fragment + [("(query) " + name, value) for name, value in query])
        return Delivery("query", query)
    if status == 200 and content_type.startswith("text/html"):
        parser = _FormParser()
        parser.feed(body.decode("utf-8", "replace"))
        forms = [form for form in parser.forms if form["action"].startswith(base) and form["method"] == "post"]
        if len(forms) == 1:
            return Delivery("form_post", forms[0]["inputs"])
        return Delivery("", problem="an HTML page that is not an auto-submitting form to the redirect URI")
    return Delivery("", problem=f"HTTP {status} ({content_type or 'no content type'}), not a redirect to the client")


@dataclass
class Flow:
    client_id: str
    mode: str
    outcome: str
    redirect_uri: str
    response_type: str
    status: int = 0
    delivery: Delivery | None = None
    #: Set when the flow could not even be started (consent page missing…).
    problem: str = ""


class _Flows:
    """Runs flows for one client through the authorization view, as a logged-in throwaway user."""

    def __init__(self, application: Any, user: Any, http: InProcess) -> None:
        self.application = application
        self.http = http
        self.browser = http.client()
        self.browser.force_login(user)
        self.authorize_path = _path("authorize") or "/o/authorize/"

    def request(self, mode: str, outcome: str, response_type: str, redirect_uri: str) -> Flow:
        flow = Flow(self.application.client_id, mode, outcome, redirect_uri, response_type)
        scopes = requested_scopes(self.application, response_type)
        if outcome == "invalid_scope":
            scopes = [*(["openid"] if "openid" in scopes else []), UNKNOWN_SCOPE]
        _, challenge = pkce_pair()
        params = {
            "client_id": self.application.client_id,
            "response_type": response_type,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": STATE,
            "response_mode": mode,
        }
        if "id_token" in response_type.split():
            params["nonce"] = NONCE
        if "code" in response_type.split():
            params.update(code_challenge=challenge, code_challenge_method="S256")
        path = f"{self.authorize_path}?{urlencode(params)}"
        response = self.browser.get(path, secure=self.http.secure)
        delivery = self._delivery(response, redirect_uri)
        if delivery.where == "" and response.status_code == 200:
            # DOT's consent page: the user presses "Cancel" (no allow field), else "Authorize" (as the
            # suite's browser does; an unknown scope that reaches this page is then granted).
            data = {**params, "claims": "", **({} if outcome == "access_denied" else {"allow": "Authorize"})}
            response = self.browser.post(path, data, secure=self.http.secure)
            delivery = self._delivery(response, redirect_uri)
        flow.status = response.status_code
        flow.delivery = delivery
        return flow

    @staticmethod
    def _delivery(response: Any, redirect_uri: str) -> Delivery:
        return delivery_of(
            response.status_code,
            response.get("Location", ""),
            response.get("Content-Type", ""),
            response.content if not getattr(response, "streaming", False) else b"",
            redirect_uri,
        )


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def requested_scopes(application: Any, response_type: str) -> list[str]:
    """DOT's default scopes of ``application`` (``openid`` first when the response type needs it)."""
    backend = oauth2_settings.SCOPES_BACKEND_CLASS()  # what DOT's get_scopes_backend() returns
    scopes = [scope for scope in backend.get_default_scopes(application=application, request=None) if scope != "openid"]
    if oauth2_settings.OIDC_ENABLED and (
        "id_token" in response_type.split()
        or "openid" in backend.get_available_scopes(application=application, request=None)
    ):
        scopes.insert(0, "openid")
    return scopes


RESPONSE_TYPE_OF_GRANT = {
    "authorization-code": "code",
    "openid-hybrid": "code id_token",
    "implicit": "id_token token",
}


def client_response_type(application: Any) -> str | None:
    """The response type the conformance suite would use for ``application``, or ``None`` (no authorization "
    "endpoint)."""
    response_type = RESPONSE_TYPE_OF_GRANT.get(str(application.authorization_grant_type))
    if response_type == "id_token token" and not oauth2_settings.OIDC_ENABLED:
        response_type = "token"
    return response_type


def client_modes(application: Any, response_type: str) -> tuple[list[str], list[str]]:
    """``(modes to run, modes the client may use but the server does not advertise)``."""
    settings = client_settings(application)
    supported = jarm_settings.response_modes
    advertised = {mode for mode in FLOW_MODES if mode in supported}
    if "jwt" in supported:
        advertised.add(jwt_mode_name(response_type))
    stored = settings.response_modes if settings is not None else None
    # A row saved without clean() may hold anything: only a list of strings is a list of modes.
    listed = [mode for mode in stored if isinstance(mode, str)] if isinstance(stored, list) else []
    jwt_listed = [mode for mode in listed if mode == "jwt" or mode.endswith(".jwt")]
    if listed:
        wanted = {jwt_mode_name(response_type) if mode == "jwt" else mode for mode in jwt_listed}
        missing = sorted(mode for mode in jwt_listed if mode not in supported)
    else:
        wanted, missing = set(advertised), []
    encrypted = settings is not None and settings.is_encrypted
    runnable = [
        mode
        for mode in FLOW_MODES
        if mode in wanted
        and mode in advertised
        and not (mode == "query.jwt" and carries_tokens(response_type) and not encrypted)
    ]
    return runnable, missing


# The suite's conditions on one callback ------------------------------------------------------


@dataclass
class _Context:
    application: Any
    settings: Any
    discovery: dict[str, Any]
    jwks: dict[str, Any]
    profile: str | None
    #: The host and scheme the flows use (the planner derives the issuer from them).
    http: InProcess | None = None


def _verify_signature(jws: str, key: Mapping[str, Any], alg: str) -> bool:
    header, payload, signature = jws.split(".")
    try:
        public = jwk.JWK(**{name: value for name, value in key.items() if name != "key_ops"})
        JWA.signing_alg("EdDSA" if alg == "Ed25519" else alg).verify(
            public, f"{header}.{payload}".encode("ascii"), _b64bytes(signature)
        )
    except (JWException, ValueError, TypeError, KeyError, Exception):  # jwcrypto raises many types
        return False
    return True


def _decrypt(token: str, secret: str, alg: str, enc: str) -> str:
    key = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(derive_secret_key(secret, alg, enc)).rstrip(b"=").decode())
    envelope = jwe.JWE(algs=[alg, enc])
    envelope.deserialize(token, key=key)
    return envelope.payload.decode("ascii")


def check_flow(flow: Flow, context: _Context, report: Report) -> None:
    """``processCallbackForJARM``: the conditions that apply to this callback, in the suite's order."""
    where = {"scope": "client", "client_id": flow.client_id, "mode": flow.mode, "outcome": flow.outcome}

    def add(check: str, status: str, reason: str, fix: str = "") -> None:
        report.add(check, status, reason, fix, **where)

    delivery = flow.delivery
    expected_where = flow.mode.split(".")[0]
    params = dict(delivery.params) if delivery else {}
    if delivery is None or delivery.where != expected_where or "response" not in params:
        if delivery is not None and delivery.where:
            got = f"{delivery.where} with parameters {', '.join(sorted(params)) or 'none'}"
        else:
            got = delivery.problem if delivery else flow.problem
        add(
            "ExtractJARMFromURLQuery",
            FAIL,
            f"No JARM response in {expected_where}: {got}.{_planner_problem(context, flow)}",
            "Fix what the planner reports (an active server key for the client's algorithm, its encryption key), "
            "then look at the JARM preview on the client's admin page.",
        )
        return
    token = params["response"]
    if not re.fullmatch(r"[A-Za-z0-9_\-.]+", token) or token.count(".") not in (2, 4):
        add(
            "ExtractJARMFromURLQuery",
            FAIL,
            "The response parameter is not a compact JWS or JWE.",
            "Use the default planner (JARM['RESPONSE_PLANNER']).",
        )
        return
    # Counted as sent: a second response parameter is as unexpected as any other.
    names = [name for name, _ in delivery.params] if delivery else []
    extra = [name for name in names if name != "response"] + (["response"] if names.count("response") > 1 else [])
    if extra:
        add(
            "RejectNonJarmResponsesInUrlQuery",
            FAIL,
            f"Parameters outside the JWT: {', '.join(sorted(extra))}.",
            "Send every response parameter inside the JWT: check the planner's deliver() and any middleware that "
            "rewrites redirects.",
        )
    else:
        add("RejectNonJarmResponsesInUrlQuery", PASS, "Nothing but response (and the redirect URI's own query).")

    settings = context.settings
    jws = token
    inner_reason = ""
    if token.count(".") == 4:
        if settings is None or not settings.is_encrypted:
            add(
                "ExtractJARMFromURLQuery",
                FAIL,
                "Encrypted although the client registered no encryption.",
                "Clear the client's encryption algorithm, or register one.",
            )
            return
        try:
            jwe_header = _b64json(token.split(".")[0])
        except ValueError:
            add("ExtractJARMFromURLQuery", FAIL, "The JWE header is not JSON.", "Use the default planner.")
            return
        _check_jwe_header(jwe_header, settings, context, add)
        alg, enc = settings.authorization_encrypted_response_alg, settings.encryption_enc
        if alg in SYMMETRIC_ENCRYPTION_ALGS:
            try:
                jws = _decrypt(token, context.application.client_secret, alg, enc)
            except Exception as exc:  # jwcrypto raises many types
                # The suite decrypts with the same secret-derived key and stops the test here.
                add(
                    "ExtractJARMFromURLQuery",
                    FAIL,
                    f"The {alg}/{enc} JWE does not decrypt with the key derived from the client secret "
                    f"(OpenID Connect Core 10.2): {type(exc).__name__}.",
                    "Encrypt with the secret-derived key (the default planner's response_jwt()); "
                    "a client secret changed since? Register the new one with the client.",
                )
                return
        else:
            inner_reason = (
                "encrypted to the client's public key: only the client holds the private key, as the conformance "
                "suite does when it runs as the client; the JWE header is checked here"
            )
    elif settings is not None and settings.is_encrypted:
        add(
            "ExtractJARMFromURLQuery",
            FAIL,
            "Signed only although the client registered encryption.",
            "Check the planner's response_jwt().",
        )
        return
    encrypted = " (a JWE, decrypted)" if jws != token else " (a JWE)" if inner_reason else ""
    add("ExtractJARMFromURLQuery", PASS, f"response present in {expected_where}{encrypted}.")
    if inner_reason:
        for name in INNER_CHECKS:
            if name in _applicable(flow, context):
                add(name, NOT_APPLICABLE, f"Not checked: {inner_reason}.")
        return
    _check_jws(jws, flow, context, add)


#: The conditions on the signed JWT (inside the JWE when encrypted).
INNER_CHECKS = (
    "ValidateJARMSignatureUsingKid",
    "ValidateJARMResponse",
    "FAPI1ValidateJarmSigningAlg",
    "FAPI2ValidateJarmSigningAlg",
    "ValidateJARMSigningAlg",
    "ValidateJARMExpRecommendations",
    "RequireIssInAuthorizationResponse",
    "CheckIfAuthorizationEndpointError",
    "ValidateSuccessfulJARMResponseFromAuthorizationEndpoint",
    "EnsureErrorFromAuthorizationEndpointResponse",
    "CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint",
)


def _applicable(flow: Flow, context: _Context) -> set[str]:
    names = set(INNER_CHECKS)
    if context.profile != "fapi1-advanced":
        names.discard("FAPI1ValidateJarmSigningAlg")
    if context.profile != "fapi2-message-signing":
        names.discard("FAPI2ValidateJarmSigningAlg")
    if flow.outcome == "success":
        names -= {
            "EnsureErrorFromAuthorizationEndpointResponse",
            "CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint",
        }
        if normalise_response_type(flow.response_type) != "code":
            names.discard("ValidateSuccessfulJARMResponseFromAuthorizationEndpoint")
    else:
        names -= {"CheckIfAuthorizationEndpointError", "ValidateSuccessfulJARMResponseFromAuthorizationEndpoint"}
    return names


def _check_jwe_header(header: Mapping[str, Any], settings: Any, context: _Context, add: Callable[..., None]) -> None:
    alg, enc = header.get("alg"), header.get("enc")
    for check, value, member, setting in (
        (
            "ValidateJARMEncryptionAlg",
            alg,
            "authorization_encryption_alg_values_supported",
            "ENCRYPTION_ALGS_SUPPORTED",
        ),
        (
            "ValidateJARMEncryptionEnc",
            enc,
            "authorization_encryption_enc_values_supported",
            "ENCRYPTION_ENCS_SUPPORTED",
        ),
    ):
        listed = context.discovery.get(member)
        if not isinstance(listed, list):
            add(
                check,
                FAIL,
                f"Discovery has no {member} list.",
                f'Serve {member}: set JARM["{setting}"] to a list.',
            )
        elif value not in listed:
            add(
                check,
                FAIL,
                f"JWE {check[-3:].lower()} {value} is not in {member}.",
                "Enable it in the JARM settings, or choose a listed one in the client's JARM settings.",
            )
        else:
            add(check, PASS, f"JWE {check[-3:].lower()} {value} is listed in discovery.")
    if alg in SYMMETRIC_ENCRYPTION_ALGS:
        return
    # ValidateJARMFromURLQueryEncryption: the kid picks exactly one client key of the alg's type.
    # RSA-OAEP* encrypts to RSA keys; ECDH-ES* to EC keys and to X25519/X448 (OKP) keys alike.
    ktys = ("RSA",) if str(alg).startswith("RSA") else ("EC", "OKP")
    kty = "/".join(ktys)
    jwks = settings.jwks if isinstance(settings.jwks, dict) else None
    if jwks is None:
        add(
            "ValidateJARMFromURLQueryEncryption",
            NOT_APPLICABLE,
            "The client's keys are at its jwks_uri; not fetched here.",
        )
        return
    keys = [key for key in jwks.get("keys", []) if isinstance(key, dict) and key.get("kty") in ktys]
    if not alg:
        add("ValidateJARMFromURLQueryEncryption", WARN, "The JWE header has no alg.", "Use the default planner.")
    elif "kid" in header:
        matching = [key for key in keys if key.get("kid") == header["kid"]]
        if len(matching) == 1:
            add(
                "ValidateJARMFromURLQueryEncryption",
                PASS,
                f"kid {header['kid']} matches exactly one {kty} key of the client.",
            )
        else:
            add(
                "ValidateJARMFromURLQueryEncryption",
                WARN,
                f"kid {header['kid']} matches {len(matching)} {kty} keys of the client.",
                "Give every key in the client's JWK Set (admin: JARM settings, JWK Set) its own kid.",
            )
    elif len(keys) == 1:
        add("ValidateJARMFromURLQueryEncryption", PASS, f"No kid, and the client has one {kty} key.")
    else:
        add(
            "ValidateJARMFromURLQueryEncryption",
            WARN,
            f"No kid in the JWE header and the client has {len(keys)} {kty} keys.",
            "Give the client's encryption keys a kid (admin: JARM settings, JWK Set).",
        )


def _check_jws(jws: str, flow: Flow, context: _Context, add: Callable[..., None]) -> None:
    applicable = _applicable(flow, context)
    try:
        header = _b64json(jws.split(".")[0])
        claims = _b64json(jws.split(".")[1])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError
    except (ValueError, IndexError):
        add(
            "ValidateJARMSignatureUsingKid",
            FAIL,
            "The JWT is not a JWS with JSON header and claims.",
            "Use the default planner.",
        )
        return
    alg, kid = str(header.get("alg", "")), header.get("kid")
    # ValidateJARMSignatureUsingKid: kid required; the key of that kid in the JWKS fits; it verifies.
    server_keys = _server_keys(context.jwks) or []
    candidates = [
        key
        for key in server_keys
        if key.get("kid") == kid
        and key.get("kty") == _kty_of(alg)
        and key.get("alg", alg) == alg
        and key.get("use", "sig") == "sig"
    ]
    if not kid:
        add("ValidateJARMSignatureUsingKid", FAIL, "The JWS header has no kid.", FIX_KEYS)
    elif alg.startswith("HS"):
        add(
            "ValidateJARMSignatureUsingKid",
            FAIL,
            f"{alg} is verified with the client secret, never with the server's JWK Set: the suite cannot verify it.",
            "Choose an asymmetric signing algorithm (PS256, ES256) in the client's JARM settings.",
        )
    elif len(candidates) != 1:
        add(
            "ValidateJARMSignatureUsingKid",
            FAIL,
            f"{len(candidates)} keys of the served JWK Set fit kid {kid} and alg {alg} (exactly one must).",
            "Publish the signing key with its own kid and alg (`manage.py jarm_keys list`); retire duplicates.",
        )
    elif not _verify_signature(jws, candidates[0], alg):
        add(
            "ValidateJARMSignatureUsingKid", FAIL, f"The signature does not verify with the served key {kid}.", FIX_KEYS
        )
    else:
        add("ValidateJARMSignatureUsingKid", PASS, f"{alg} signature verified with served key {kid}.")

    now = time.time()
    issuer = context.discovery.get("issuer")
    problems = []
    if claims.get("iss") != issuer:
        problems.append(f"iss {claims.get('iss')!r} is not the issuer {issuer!r}")
    aud = claims.get("aud")
    if not (aud == flow.client_id or (isinstance(aud, list) and flow.client_id in aud)):
        problems.append(f"aud {aud!r} is not the client_id")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        problems.append("exp is missing or not an integer")
    elif exp < now - 300:
        problems.append("exp is more than 5 minutes in the past")
    elif exp > now + 50 * 365 * 24 * 3600:
        problems.append("exp is more than 50 years ahead")
    iat = claims.get("iat")
    if iat is not None and (not isinstance(iat, (int, float)) or not now - 24 * 3600 <= iat <= now + 300):
        problems.append("iat is more than 5 minutes ahead or more than a day old")
    if problems:
        add(
            "ValidateJARMResponse",
            FAIL,
            "; ".join(problems) + ".",
            'Check JARM["ISSUER"] / DOT\'s OIDC_ISS_ENDPOINT, JARM["RESPONSE_LIFETIME"] (seconds) and the '
            "server clock.",
        )
    else:
        add("ValidateJARMResponse", PASS, "iss, aud, exp and iat are as the suite requires.")

    for check, allowed in (
        ("FAPI1ValidateJarmSigningAlg", FAPI1_SIGNING_ALGS),
        ("FAPI2ValidateJarmSigningAlg", FAPI2_SIGNING_ALGS),
    ):
        if check in applicable:
            if alg in allowed:
                add(check, PASS, f"{alg} is allowed.")
            else:
                add(
                    check,
                    FAIL,
                    f"{alg} is not one of {', '.join(allowed)}.",
                    f"Choose one of {', '.join(allowed)} in the client's JARM settings (signing algorithm).",
                )

    listed = context.discovery.get("authorization_signing_alg_values_supported")
    if not isinstance(listed, list):
        add(
            "ValidateJARMSigningAlg",
            FAIL,
            "Discovery has no authorization_signing_alg_values_supported list.",
            'Serve it: set JARM["SIGNING_ALGS_SUPPORTED"] to a list.',
        )
    elif alg not in listed:
        add(
            "ValidateJARMSigningAlg",
            FAIL,
            f"{alg} is not in authorization_signing_alg_values_supported ({', '.join(map(str, listed))}).",
            f"Generate an active {alg} key (`manage.py jarm_keys generate --alg {alg}`) or choose a listed "
            "algorithm for the client.",
        )
    else:
        add("ValidateJARMSigningAlg", PASS, f"{alg} is listed in discovery.")

    if isinstance(exp, int) and not isinstance(exp, bool):
        if exp > now + 15 * 60:
            add(
                "ValidateJARMExpRecommendations",
                WARN,
                f"exp is {int(exp - now)} s ahead (at most 10 min + 5 min skew recommended).",
                'Lower JARM["RESPONSE_LIFETIME"] to 600 or less (default 120).',
            )
        elif exp < now + 10:
            add(
                "ValidateJARMExpRecommendations",
                WARN,
                f"exp is {int(exp - now)} s ahead (at least 10 s recommended).",
                'Raise JARM["RESPONSE_LIFETIME"] to 10 or more (default 120).',
            )
        else:
            add("ValidateJARMExpRecommendations", PASS, f"exp is {int(exp - now)} s ahead.")

    response = {name: value for name, value in claims.items() if name not in JWT_STANDARD_CLAIMS}
    fapi2 = context.profile == "fapi2-message-signing"
    if response.get("iss") == issuer:
        add("RequireIssInAuthorizationResponse", PASS, "iss in the JWT is the issuer.")
    else:
        add(
            "RequireIssInAuthorizationResponse",
            FAIL if fapi2 else WARN,
            f"iss in the JWT is {response.get('iss')!r}, not the issuer.",
            "Keep iss in the response claims (check the planner's get_response_claims()).",
        )
    error = response.get("error")
    if flow.outcome == "success":
        if error is None and any(part in response for part in ("code", "access_token", "id_token")):
            add("CheckIfAuthorizationEndpointError", PASS, "A successful response.")
        else:
            add(
                "CheckIfAuthorizationEndpointError",
                FAIL,
                f"The success flow answered error={error!r} ({response.get('error_description', '')}).",
                "Fix what the error says (the client's allowed modes, the profile's requirements, its redirect URI).",
            )
        if "ValidateSuccessfulJARMResponseFromAuthorizationEndpoint" in applicable:
            unexpected = sorted(set(response) - SUCCESS_PARAMETERS)
            if unexpected:
                add(
                    "ValidateSuccessfulJARMResponseFromAuthorizationEndpoint",
                    WARN,
                    f"Unexpected claims: {', '.join(unexpected)}.",
                    "Add no claims in the planner's get_response_claims().",
                )
            else:
                add("ValidateSuccessfulJARMResponseFromAuthorizationEndpoint", PASS, "Only code, state and iss.")
    else:
        if error == flow.outcome:
            add("EnsureErrorFromAuthorizationEndpointResponse", PASS, f"error={error}.")
        else:
            add(
                "EnsureErrorFromAuthorizationEndpointResponse",
                FAIL,
                f"Expected error={flow.outcome}, got {('error=' + str(error)) if error else 'a success'}.",
                "Check the OAuth2 validator (OAUTH2_VALIDATOR_CLASS): unknown scopes must be refused, a denied "
                "consent answered access_denied.",
            )
        unexpected = sorted(set(response) - ERROR_PARAMETERS)
        if unexpected:
            add(
                "CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint",
                WARN,
                f"Unexpected claims: {', '.join(unexpected)}.",
                "Add no claims to error responses (the planner's get_response_claims()).",
            )
        else:
            add(
                "CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint",
                PASS,
                "Only error, error_description, state and iss.",
            )


def _planner_problem(context: _Context, flow: Flow) -> str:
    """What the core's plan says about this client (as the admin preview shows), for the reason."""
    http = context.http or InProcess()
    request = RequestFactory(HTTP_HOST=http.host).get("/", secure=http.secure)
    try:
        plan = get_planner().plan(
            request,
            context.application,
            AuthorizationRequest(
                client_id=flow.client_id,
                redirect_uri=flow.redirect_uri,
                response_type=flow.response_type,
                state=STATE,
                response_modes=(flow.mode,),
            ),
        )
    except Exception as exc:  # the explanation of a failure must not fail the report
        return f" (The planner could not be asked why: {type(exc).__name__}.)"
    problem = plan.problem or (plan.refusal.description if plan.refusal else "")
    return f" The planner says: {problem}" if problem else ""


# Per client --------------------------------------------------------------------------------------


def _throwaway_user() -> Any:
    user_model = get_user_model()
    user = user_model(**{user_model.USERNAME_FIELD: f"jarm-conformance-{secrets.token_hex(8)}"})
    if hasattr(user, "is_active"):
        user.is_active = True  # a model whose users start inactive (e-mail verification) would never log in
    user.set_unusable_password()
    user.save()
    return user


def _written_databases() -> list[str]:
    """Every database the flows write to (a router may send DOT's models or the users elsewhere)."""
    models = [get_user_model(), get_application_model(), get_grant_model(), get_access_token_model()]
    models += [get_refresh_token_model(), get_id_token_model()]
    if apps.is_installed("django.contrib.sessions"):
        models.append(apps.get_model("sessions", "Session"))
    return sorted({router.db_for_write(model) or "default" for model in models})


@contextlib.contextmanager
def rolled_back() -> Iterator[None]:
    """A transaction on every database the flows write to, rolled back whatever happens."""
    with contextlib.ExitStack() as stack:
        databases = _written_databases()
        for alias in databases:
            stack.enter_context(transaction.atomic(using=alias))
        try:
            yield
        finally:
            for alias in databases:
                transaction.set_rollback(True, using=alias)


def client_results(
    applications: Iterable[Any] | None = None, *, host: str | None = None, secure: bool | None = None
) -> Report:
    """The flows of every client (all by default), each checked; nothing they create is kept."""
    report = Report()
    http = InProcess(host, secure=secure)
    # A key stored just now (a fresh deployment, the demo's set-up) signs once every process
    # publishes it, within STATE_REFRESH_SECONDS: wait for that rather than report its absence.
    pause = min(published_keys().until_new_keys_sign(timezone.now()), publication_wait())
    if pause > 0:
        time.sleep(pause)
    # Every row the flows write (user, session, grant, tokens, consent) goes.
    with rolled_back():
        _run_clients(applications, http, report)
    return report


def _run_clients(applications: Iterable[Any] | None, http: InProcess, report: Report) -> None:
    documents = http.served()
    served = next(
        (document for document in documents if document.discovery is not None and document.jwks is not None), None
    )
    if served is None or served.discovery is None or served.jwks is None:
        report.add(
            "CheckServerConfiguration",
            FAIL,
            "No discovery document and JWK Set to check responses against.",
            "See the server checks.",
            scope="client",
        )
        return
    try:
        with transaction.atomic():
            user = _throwaway_user()
    except Exception as exc:  # a custom user model with required fields, a database refusing the row
        report.add(
            "CheckServerConfiguration",
            FAIL,
            f"No throwaway user can be created for the flows ({type(exc).__name__}: {exc}).",
            "The self-test saves a user with only a username (USERNAME_FIELD) and an unusable password, "
            "rolled back afterwards: give the user model's other fields defaults.",
            scope="client",
        )
        return
    profile = jarm_settings.PROFILE
    if applications is None:
        applications = get_application_model().objects.order_by("client_id")
    for application in applications:
        settings = client_settings(application)
        context = _Context(application, settings, served.discovery, served.jwks, profile, http)
        base = {"scope": "client", "client_id": application.client_id}
        response_type = client_response_type(application)
        if response_type is None:
            report.add(
                "CheckClientUsesAuthorizationEndpoint",
                NOT_APPLICABLE,
                f"Grant type {application.authorization_grant_type} has no authorization responses.",
                **base,
            )
            continue
        if not jarm_settings.profile.allows_response_type(response_type):
            report.add(
                "CheckClientUsesAuthorizationEndpoint",
                FAIL,
                f"{jarm_settings.profile.title} refuses response_type={response_type}, the one this client's grant "
                "type uses.",
                "Change the client's authorization grant type to authorization-code.",
                **base,
            )
            continue
        redirect_uris = application.redirect_uris.split()
        if not redirect_uris:
            report.add(
                "CheckClientUsesAuthorizationEndpoint",
                FAIL,
                "The client has no redirect URI.",
                "Register one on the client's admin page (Redirect uris).",
                **base,
            )
            continue
        modes, missing = client_modes(application, response_type)
        advertised = served.discovery.get("response_modes_supported")
        missing += [
            mode for mode in modes if isinstance(advertised, list) and mode not in advertised and mode not in missing
        ]
        if missing:
            report.add(
                "CheckClientResponseModesSupported",
                FAIL,
                f"The client may use {', '.join(missing)}, which discovery does not advertise "
                "(response_modes_supported).",
                'Add them to JARM["RESPONSE_MODES_SUPPORTED"], or remove them from the client\'s allowed response '
                "modes (admin: JARM settings).",
                **base,
            )
            modes = [mode for mode in modes if mode not in missing]
        elif not modes:
            report.add(
                "CheckClientResponseModesSupported",
                NOT_APPLICABLE,
                "The client may use no JWT response mode (not a JARM client): nothing to check.",
                "Allow a JWT mode for the client to check it (admin: JARM settings, allowed response modes).",
                **base,
            )
        else:
            report.add("CheckClientResponseModesSupported", PASS, f"JWT modes: {', '.join(modes)}.", **base)
        flows = _Flows(application, user, http)
        try:
            for mode in modes:
                for outcome in OUTCOMES:
                    with rolled_back():
                        if outcome == "access_denied" and application.skip_authorization:
                            # The consent page must show for the user to deny (rolled back with the rest).
                            type(application).objects.filter(pk=application.pk).update(skip_authorization=False)
                        flow = flows.request(mode, outcome, response_type, redirect_uris[0])
                    check_flow(flow, context, report)
        finally:
            flows.browser.logout()  # a session kept outside the database (cache sessions) goes too


def run(
    client_ids: Iterable[str] | None = None,
    *,
    base_url: str | None = None,
    host: str | None = None,
    secure: bool | None = None,
    include_server: bool = True,
    timeout: float = REMOTE_TIMEOUT,
) -> Report:
    """Every check: the server in process (and at ``base_url``), then each client (all by default)."""
    report = Report()
    if base_url:
        parts = urlsplit(base_url)
        host = host or parts.netloc
        secure = parts.scheme == "https" if secure is None else secure
    if include_server:
        report.results += server_results(host, secure=secure).results
        if base_url:
            report.results += remote_server_results(base_url, timeout=timeout).results
    applications = None
    if client_ids is not None:
        wanted = list(client_ids)
        found = {app.client_id: app for app in get_application_model().objects.filter(client_id__in=wanted)}
        for client_id in wanted:
            if client_id not in found:
                report.add(
                    "CheckClientUsesAuthorizationEndpoint",
                    FAIL,
                    "No such client.",
                    "Check the client_id.",
                    scope="client",
                    client_id=client_id,
                )
        applications = [found[client_id] for client_id in wanted if client_id in found]
    report.results += client_results(applications, host=host, secure=secure).results
    return report
