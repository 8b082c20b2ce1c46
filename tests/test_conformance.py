"""The OpenID conformance suite's JARM checks that apply to a server, run over real flows per profile.

Each check is a function named after the suite's condition class it mirrors (conformance-suite
5.2, ``condition/client/``), written against raw HTTP answers and joserfc, never our code.
:func:`process_callback` runs them in the suite's order (``processCallbackForJARM``) and returns
the names it ran, so every flow test states which conditions it passed.

The flows: for each ``JARM["PROFILE"]``, each response type it allows, each JWT response mode,
success and the errors ``access_denied``, ``invalid_scope`` and ``login_required``, signed and
signed then encrypted, through DOT's real authorization view. Then a negative test for every request and
setting a profile forbids, and a check that discovery says exactly what the endpoint enforces.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from django_jarm.keys import generate_server_key
from django_jarm.models import ServerKey
from tests import rp
from tests.conftest import RESPONSE_TYPES

REGISTERED_REDIRECT_URI = "https://rp.example/cb?dummy1=lorem&dummy2=ipsum"
REGISTERED_QUERY = [("dummy1", "lorem"), ("dummy2", "ipsum")]
STATE = "xyz-state-123"
JWT_STANDARD_CLAIMS = {"sub", "aud", "exp", "nbf", "iat", "jti"}
JWT_MODES = ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"]
PLAIN_MODES = ["query", "fragment", "form_post"]
OUTCOMES = ["success", "access_denied", "invalid_scope", "login_required"]

FAPI1 = "fapi1-advanced"
FAPI2 = "fapi2-message-signing"
#: What each profile allows, written out from FAPI 1.0 Advanced 5.2.2 / 8.6 and FAPI 2.0 SP 5.3.2.2 / 5.4.1.
ALLOWED_RESPONSE_TYPES = {None: RESPONSE_TYPES, FAPI1: ["code", "code id_token"], FAPI2: ["code"]}
SIGNING_ALGS = {
    None: ["RS256", "ES256", "EdDSA", "Ed25519", "PS256"],
    FAPI1: ["ES256", "PS256"],
    FAPI2: ["ES256", "EdDSA", "Ed25519", "PS256"],
}
ENCRYPTION_ALGS = {
    None: ["ECDH-ES", "RSA-OAEP-256", "A256KW", "dir", "ECDH-ES+A128KW"],
    FAPI1: ["RSA-OAEP", "ECDH-ES", "A128GCMKW"],
    FAPI2: ["ECDH-ES", "RSA-OAEP-256", "ECDH-ES+A256KW"],
}
ENCRYPTION_ENCS = ["A128CBC-HS256", "A256GCM", "A256CBC-HS512"]
CLIENT_SECRET = "s3cret-" + "x" * 60  # unhashed, long enough for every symmetric algorithm


def carries_tokens(response_type: str) -> bool:
    return bool({"token", "id_token"} & set(response_type.split()))


def _b64json(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


# One flow's callback, and what the conditions learn from it --------------------------------


@dataclass
class Encryption:
    alg: str
    enc: str
    #: The client's private key (asymmetric) or the secret-derived key (symmetric).
    key: Any
    #: The client's public JWK Set, as registered (asymmetric only).
    jwks: dict[str, Any] | None


@dataclass
class Callback:
    """What the suite holds after the browser came back to the redirect URI."""

    response: Any
    delivery: rp.Delivery
    discovery: dict[str, Any]
    server_jwks: dict[str, Any]
    client_id: str
    state: str | None
    profile: str | None
    response_type: str
    encryption: Encryption | None = None
    token: str = ""
    jwe_header: dict[str, Any] | None = None
    jws: str = ""
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


CONDITIONS: dict[str, Callable[[Callback], None]] = {}


def condition(function: Callable[[Callback], None]) -> Callable[[Callback], None]:
    CONDITIONS[function.__name__] = function
    return function


def _query_and_fragment(response: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    if response.status_code not in (302, 303):
        return [], []
    parts = urlsplit(response["Location"])
    return parse_qsl(parts.query, keep_blank_values=True), parse_qsl(parts.fragment, keep_blank_values=True)


# The suite's conditions on a JARM callback ---------------------------------------------------


@condition
def ValidateJARMFromURLQueryEncryption(cb: Callback) -> None:
    """The JWE names its alg; its kid picks exactly one client key of the right type."""
    token = dict(cb.delivery.params)["response"]
    header = _b64json(token.split(".")[0])
    assert header.get("alg"), "JWE without alg"
    assert cb.encryption is not None
    assert cb.encryption.jwks is not None
    kty = "RSA" if header["alg"].startswith("RSA") else "EC"
    keys = [key for key in cb.encryption.jwks["keys"] if key["kty"] == kty]
    if "kid" in header:
        assert len([key for key in keys if key.get("kid") == header["kid"]]) == 1
    else:
        assert len(keys) == 1, "several keys of the right type and no kid"


@condition
def ExtractJARMFromURLQuery(cb: Callback) -> None:
    """(and its fragment and form_post twins) ``response`` present, base64url and dots only, a JWT.

    A JWE is decrypted with the client's key (asymmetric) or the client-secret-derived key
    (symmetric); what it holds must be a JWS, never another JWE.
    """
    params = dict(cb.delivery.params)
    assert "response" in params, "no response parameter"
    cb.token = params["response"]
    assert re.fullmatch(r"[A-Za-z0-9_\-.]+", cb.token), "not base64url and dots"
    segments = cb.token.count(".") + 1
    assert segments in (3, 5), f"{segments} segments"
    if segments == 5:
        assert cb.encryption is not None, "encrypted although the client registered no encryption"
        cb.jwe_header, cb.jws = rp.decrypt_response(
            cb.token, cb.encryption.key, alg=cb.encryption.alg, enc=cb.encryption.enc
        )
        assert cb.jws.count(".") == 2, "a JWE inside the JWE"
        assert cb.jwe_header["cty"] == "JWT"
    else:
        assert cb.encryption is None, "not encrypted although the client registered encryption"
        cb.jws = cb.token
    cb.header = _b64json(cb.jws.split(".")[0])


@condition
def RejectNonJarmResponsesInUrlQuery(cb: Callback) -> None:
    """Nothing but ``response`` (plus the registered redirect URI's own query), in query, fragment or form."""
    query, fragment = _query_and_fragment(cb.response)
    assert [pair for pair in query if pair not in REGISTERED_QUERY and pair[0] != "response"] == []
    assert [name for name, _ in fragment if name != "response"] == []
    assert [name for name, _ in cb.delivery.params] == ["response"]


@condition
def ExtractAuthorizationEndpointResponseFromJARMResponse(cb: Callback) -> None:
    """The authorization response: the claims minus sub, aud, exp, nbf, iat, jti (iss stays)."""
    cb.claims = dict(jwt.decode(cb.jws, _verification_keys(cb), algorithms=[cb.header["alg"]]).claims)
    cb.params = {name: value for name, value in cb.claims.items() if name not in JWT_STANDARD_CLAIMS}


@condition
def ValidateJARMResponse(cb: Callback) -> None:
    """iss = issuer; aud = or contains client_id; exp present, sane; iat, if present, sane."""
    now = time.time()
    claims = cb.claims
    assert claims.get("iss") == cb.discovery["issuer"]
    aud = claims.get("aud")
    assert aud == cb.client_id or (isinstance(aud, list) and cb.client_id in aud)
    assert isinstance(claims.get("exp"), int)
    assert claims["exp"] >= now - 5 * 60, "exp more than 5 minutes past"
    assert claims["exp"] < now + 50 * 365 * 24 * 3600, "exp in milliseconds?"
    if "iat" in claims:
        assert now - 24 * 3600 <= claims["iat"] <= now + 5 * 60


@condition
def FAPI1ValidateJarmSigningAlg(cb: Callback) -> None:
    assert cb.header["alg"] in ("PS256", "ES256")


@condition
def FAPI2ValidateJarmSigningAlg(cb: Callback) -> None:
    assert cb.header["alg"] in ("PS256", "ES256", "EdDSA", "Ed25519")


@condition
def ValidateJARMSigningAlg(cb: Callback) -> None:
    """The JWS alg is listed in discovery (a missing list fails)."""
    assert cb.header["alg"] in cb.discovery["authorization_signing_alg_values_supported"]


@condition
def ValidateJARMEncryptionAlg(cb: Callback) -> None:
    assert cb.jwe_header is not None
    assert cb.jwe_header["alg"] in cb.discovery["authorization_encryption_alg_values_supported"]


@condition
def ValidateJARMEncryptionEnc(cb: Callback) -> None:
    assert cb.jwe_header is not None
    assert cb.jwe_header["enc"] in cb.discovery["authorization_encryption_enc_values_supported"]


@condition
def ValidateJARMExpRecommendations(cb: Callback) -> None:
    """exp at most 10 minutes (+ 5 skew) and at least 10 seconds ahead."""
    now = time.time()
    assert cb.claims["exp"] <= now + 15 * 60
    assert cb.claims["exp"] >= now + 10 - 2  # two seconds for the test's own time


def _kty(alg: str) -> str:
    return {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}[alg[:2]]


def _verification_keys(cb: Callback) -> KeySet:
    """The keys ValidateJARMSignatureUsingKid accepts for the header's kid: exactly one."""
    header = cb.header
    assert header.get("kid"), "JARM JWS without kid"
    candidates = [
        key
        for key in cb.server_jwks["keys"]
        if key.get("kid") == header["kid"]
        and key["kty"] == _kty(header["alg"])
        and key.get("alg", header["alg"]) == header["alg"]
        and key.get("use", "sig") == "sig"
    ]
    assert len(candidates) == 1, f"{len(candidates)} keys fit kid {header['kid']}"
    return KeySet.import_key_set({"keys": candidates})


@condition
def ValidateJARMSignatureUsingKid(cb: Callback) -> None:
    """kid in the header, exactly one fitting key in the server's JWKS, and the signature verifies with it."""
    verified = jwt.decode(cb.jws, _verification_keys(cb), algorithms=[cb.header["alg"]])
    assert dict(verified.claims) == cb.claims


@condition
def ValidateSuccessfulJARMResponseFromAuthorizationEndpoint(cb: Callback) -> None:
    assert set(cb.params) <= {"code", "state", "session_state", "iss"}, set(cb.params)


@condition
def CheckMatchingCallbackParameters(cb: Callback) -> None:
    """The registered redirect URI's own query arrives untouched."""
    if cb.delivery.mode == "form_post":
        assert cb.delivery.target == REGISTERED_REDIRECT_URI
    else:
        query, _ = _query_and_fragment(cb.response)
        assert [pair for pair in query if pair[0] != "response"] == REGISTERED_QUERY


@condition
def CheckIfAuthorizationEndpointError(cb: Callback) -> None:
    assert "error" not in cb.params, cb.params


@condition
def EnsureErrorFromAuthorizationEndpointResponse(cb: Callback) -> None:
    assert "error" in cb.params, cb.params


@condition
def CheckStateInAuthorizationResponse(cb: Callback) -> None:
    if cb.state is None:
        assert "state" not in cb.params
    else:
        assert cb.params.get("state") == cb.state


@condition
def RequireIssInAuthorizationResponse(cb: Callback) -> None:
    """(FAPI 2; ValidateIssIfPresentInAuthorizationResponse for FAPI 1) iss, from the JWT, is the issuer."""
    assert cb.params.get("iss") == cb.discovery["issuer"]


@condition
def RejectAuthCodeInUrlQuery(cb: Callback) -> None:
    query, _ = _query_and_fragment(cb.response)
    assert "code" not in dict(query)


@condition
def RejectAuthCodeInUrlFragment(cb: Callback) -> None:
    _, fragment = _query_and_fragment(cb.response)
    assert "code" not in dict(fragment)


@condition
def RejectErrorInUrlFragment(cb: Callback) -> None:
    _, fragment = _query_and_fragment(cb.response)
    assert "error" not in dict(fragment)


@condition
def EnsureMinimumAuthorizationCodeLength(cb: Callback) -> None:
    assert len(cb.params["code"]) >= 22


@condition
def EnsureMinimumAuthorizationCodeEntropy(cb: Callback) -> None:
    code = cb.params["code"]
    per_character = -sum(n / len(code) * math.log2(n / len(code)) for n in Counter(code).values())
    assert per_character * len(code) >= 96


@condition
def CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint(cb: Callback) -> None:
    assert set(cb.params) <= {"error", "error_description", "error_uri", "state", "session_state", "iss"}


#: The conditions that check one JARM callback (the discovery and key ones are tests below).
CALLBACK_CONDITIONS = set(CONDITIONS)


def process_callback(cb: Callback, *, error: str | None) -> list[str]:
    """The suite's ``processCallbackForJARM``: run the conditions that apply, in its order."""
    ran: list[str] = []

    def run(name: str) -> None:
        try:
            CONDITIONS[name](cb)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
        ran.append(name)

    encrypted = dict(cb.delivery.params).get("response", "").count(".") == 4
    if encrypted and cb.encryption is not None and cb.encryption.jwks is not None:
        run("ValidateJARMFromURLQueryEncryption")
    for name in ("ExtractJARMFromURLQuery", "RejectNonJarmResponsesInUrlQuery"):
        run(name)
    run("ExtractAuthorizationEndpointResponseFromJARMResponse")
    run("ValidateJARMResponse")
    if cb.profile == FAPI1:
        run("FAPI1ValidateJarmSigningAlg")
    elif cb.profile == FAPI2:
        run("FAPI2ValidateJarmSigningAlg")
    run("ValidateJARMSigningAlg")
    if cb.jwe_header is not None:
        run("ValidateJARMEncryptionAlg")
        run("ValidateJARMEncryptionEnc")
    run("ValidateJARMExpRecommendations")
    run("ValidateJARMSignatureUsingKid")
    run("CheckMatchingCallbackParameters")
    run("CheckStateInAuthorizationResponse")
    run("RequireIssInAuthorizationResponse")
    for name in ("RejectAuthCodeInUrlQuery", "RejectAuthCodeInUrlFragment", "RejectErrorInUrlFragment"):
        run(name)
    if error is None:
        run("CheckIfAuthorizationEndpointError")
        if cb.response_type == "code":
            run("ValidateSuccessfulJARMResponseFromAuthorizationEndpoint")
        if "code" in cb.response_type.split():
            run("EnsureMinimumAuthorizationCodeLength")
            run("EnsureMinimumAuthorizationCodeEntropy")
    else:
        run("EnsureErrorFromAuthorizationEndpointResponse")
        assert cb.params["error"] == error, cb.params
        run("CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint")
    return ran


# Keys and clients ------------------------------------------------------------------------------


_stored_keys: dict[str, dict[str, Any]] = {}


def _server_key(alg: str) -> None:
    """An active server key for ``alg``; RSA keys are made once and stored again in later tests (they are slow)."""
    if alg in _stored_keys:
        ServerKey.objects.create(**_stored_keys[alg])
        return
    key = generate_server_key(alg)
    if key.kty == "RSA":
        fields = ("kid", "alg", "kty", "crv", "status", "public_jwk", "private_jwk_encrypted", "activated")
        _stored_keys[alg] = {name: getattr(key, name) for name in fields}


@functools.cache
def _client_rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "client-rsa", "use": "enc"})


@pytest.fixture(autouse=True)
def _requests_go_direct(settings: Any) -> None:
    """These checks send every request to the authorization endpoint directly.

    Where DOT serves PAR, the FAPI 2.0 profile would refuse that (check E012's premise); the
    pushed path of the same flows is tested in test_par.py, so PAR is off here.
    """
    from django_jarm._compat import dot_has_par

    if dot_has_par():
        settings.OAUTH2_PROVIDER = {**django_settings.OAUTH2_PROVIDER, "PAR_ENABLED": False}


@pytest.fixture
def server_keys(db: Any) -> None:
    """Active PS256, ES256 and EdDSA keys (RS256 is DOT's OIDC key)."""
    for alg in ("PS256", "ES256", "EdDSA"):
        _server_key(alg)


def client_encryption(alg: str, enc: str) -> tuple[Encryption, dict[str, Any]]:
    """The decrypting side of ``alg``/``enc`` and the client settings that register it."""
    settings: dict[str, Any] = {
        "authorization_encrypted_response_alg": alg,
        "authorization_encrypted_response_enc": enc,
    }
    if alg.startswith("RSA"):
        key: Any = _client_rsa_key()
    elif alg.startswith("ECDH"):
        key = ECKey.generate_key("P-256", parameters={"kid": "client-ec", "use": "enc"})
    else:
        secret_key = OctKey.import_key(rp.derive_secret_key(CLIENT_SECRET, alg, enc))
        return Encryption(alg, enc, secret_key, None), settings
    jwks = {"keys": [key.as_dict(private=False)]}
    settings["jwks"] = jwks
    return Encryption(alg, enc, key, jwks), settings


def jarm_settings_of(profile: str | None, **extra: Any) -> dict[str, Any]:
    return {"PROFILE": profile, **extra} if profile else extra


def expected_delivery(profile: str | None, response_type: str, mode: str) -> tuple[str, int]:
    """Where a JWT response travels (JARM 2.3) and with which status (303 under FAPI 2 by default)."""
    resolved = ("fragment.jwt" if carries_tokens(response_type) else "query.jwt") if mode == "jwt" else mode
    where = resolved.split(".")[0]
    if where == "form_post":
        return where, 200
    return where, 303 if profile == FAPI2 else 302


def callback_of(response: Any, client_id: str, *, profile: str | None, response_type: str, **kwargs: Any) -> Callback:
    with override_settings(JARM=jarm_settings_of(profile)):
        discovery = Client().get("/o/.well-known/openid-configuration").json()
        server_jwks = Client().get("/o/.well-known/jwks.json").json()
    return Callback(
        response=response,
        delivery=rp.delivery_of(response, REGISTERED_REDIRECT_URI),
        discovery=discovery,
        server_jwks=server_jwks,
        client_id=client_id,
        profile=profile,
        response_type=response_type,
        **kwargs,
    )


def authorize(
    client: Client,
    app: Any,
    response_type: str,
    mode: str | None,
    *,
    scope: str = "openid read",
    pkce: tuple[str | None, str | None] | None = None,
    extra: dict[str, str] | None = None,
) -> tuple[Any, str]:
    """One authorization request with state and nonce (and PKCE S256 for code); returns (response, verifier)."""
    verifier, challenge = rp.pkce_pair()
    query = [
        ("client_id", app.client_id),
        ("response_type", response_type),
        ("redirect_uri", REGISTERED_REDIRECT_URI),
        ("scope", scope),
        ("state", STATE),
        ("nonce", "n-0S6_WzA2Mj"),
    ]
    if "code" in response_type.split():
        method: str | None
        challenge_value, method = pkce if pkce is not None else (challenge, "S256")
        if challenge_value is not None:
            query.append(("code_challenge", challenge_value))
        if method is not None:
            query.append(("code_challenge_method", method))
    if mode is not None:
        query.append(("response_mode", mode))
    query += list((extra or {}).items())
    return client.get("/o/authorize/?" + urlencode(query)), verifier


def deny(browser: Client, consent_page: Any) -> Any:
    """The user presses "cancel" on DOT's consent form."""
    assert consent_page.status_code == 200, consent_page.status_code
    form = consent_page.context["form"]
    data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
    path = consent_page.request["PATH_INFO"] + "?" + consent_page.request["QUERY_STRING"]
    return browser.post(path, data)


# The flows ---------------------------------------------------------------------------------------


def _flows() -> list[Any]:
    cases = []
    for profile, response_types in ALLOWED_RESPONSE_TYPES.items():
        index = 0
        for response_type in response_types:
            for mode in JWT_MODES:
                for outcome in OUTCOMES:
                    for encrypted in (False, True):
                        if mode == "query.jwt" and carries_tokens(response_type) and not encrypted:
                            continue  # JARM 2.3.1: refused; see test_query_jwt_with_tokens_needs_encryption
                        algs, encryptions = SIGNING_ALGS[profile], ENCRYPTION_ALGS[profile]
                        case = (
                            profile,
                            response_type,
                            mode,
                            outcome,
                            algs[index % len(algs)],
                            encryptions[index % len(encryptions)] if encrypted else None,
                            ENCRYPTION_ENCS[index % len(ENCRYPTION_ENCS)],
                        )
                        name = f"{profile or 'no-profile'}-{response_type.replace(' ', '+')}-{mode}-{outcome}-{case[4]}"
                        cases.append(pytest.param(*case, id=name + (f"-{case[5]}" if encrypted else "-signed")))
                        index += 1
    return cases


@pytest.mark.django_db
@pytest.mark.parametrize(("profile", "response_type", "mode", "outcome", "alg", "encryption_alg", "enc"), _flows())
def test_flow(db, browser, make_app, redeem, profile, response_type, mode, outcome, alg, encryption_alg, enc):
    if alg != "RS256":  # DOT's OIDC key signs RS256
        _server_key({"Ed25519": "EdDSA"}.get(alg, alg))
    encryption, encryption_settings = client_encryption(encryption_alg, enc) if encryption_alg else (None, {})
    app = make_app(
        response_type,
        redirect_uris=REGISTERED_REDIRECT_URI,
        skip_authorization=outcome != "access_denied",
        hash_client_secret=False,
        client_secret=CLIENT_SECRET,
        jarm={"authorization_signed_response_alg": alg, **encryption_settings},
    )
    with override_settings(JARM=jarm_settings_of(profile)):
        if outcome == "login_required":
            response, verifier = authorize(Client(), app, response_type, mode, extra={"prompt": "none"})
        elif outcome == "invalid_scope":
            response, verifier = authorize(browser, app, response_type, mode, scope="openid superuser")
        else:
            response, verifier = authorize(browser, app, response_type, mode)
            if outcome == "access_denied":
                response = deny(browser, response)
    where, status = expected_delivery(profile, response_type, mode)
    assert response.status_code == status
    cb = callback_of(
        response, app.client_id, profile=profile, response_type=response_type, state=STATE, encryption=encryption
    )
    assert cb.delivery.mode == where
    error = None if outcome == "success" else outcome
    ran = process_callback(cb, error=error)

    assert cb.header["alg"] == alg  # RFC 9864: Ed25519 and EdDSA clients each get their own name
    assert ("ValidateJARMEncryptionAlg" in ran) == (encryption is not None)
    if error is None:
        for part in response_type.split():
            assert {"token": "access_token"}.get(part, part) in cb.params, part
        if response_type == "code" and mode != "form_post.jwt":
            redeemed = redeem(app, cb.params["code"], verifier, redirect_uri=REGISTERED_REDIRECT_URI)
            assert redeemed.status_code == 200, redeemed.content
    else:
        assert not {"code", "access_token", "id_token"} & set(cb.params)


def test_every_callback_condition_is_run_by_some_flow():
    """The registry holds exactly the suite's callback conditions that apply to a server."""
    assert {
        "ValidateJARMFromURLQueryEncryption",
        "ExtractJARMFromURLQuery",
        "RejectNonJarmResponsesInUrlQuery",
        "ExtractAuthorizationEndpointResponseFromJARMResponse",
        "ValidateJARMResponse",
        "FAPI1ValidateJarmSigningAlg",
        "FAPI2ValidateJarmSigningAlg",
        "ValidateJARMSigningAlg",
        "ValidateJARMEncryptionAlg",
        "ValidateJARMEncryptionEnc",
        "ValidateJARMExpRecommendations",
        "ValidateJARMSignatureUsingKid",
        "ValidateSuccessfulJARMResponseFromAuthorizationEndpoint",
        "CheckMatchingCallbackParameters",
        "CheckIfAuthorizationEndpointError",
        "EnsureErrorFromAuthorizationEndpointResponse",
        "CheckStateInAuthorizationResponse",
        "RequireIssInAuthorizationResponse",
        "RejectAuthCodeInUrlQuery",
        "RejectAuthCodeInUrlFragment",
        "RejectErrorInUrlFragment",
        "EnsureMinimumAuthorizationCodeLength",
        "EnsureMinimumAuthorizationCodeEntropy",
        "CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint",
    } == CALLBACK_CONDITIONS
    # Each one is reachable: the flows above cover every branch of process_callback (encrypted
    # with a client JWKS, each profile's algorithm check, success with and without a code, errors).
    shapes = {(profile, encryption is not None) for profile, *_, encryption, _ in (p.values for p in _flows())}
    assert shapes == {(profile, encrypted) for profile in ALLOWED_RESPONSE_TYPES for encrypted in (False, True)}


@pytest.mark.django_db
@pytest.mark.parametrize("state", [STATE, None], ids=["state", "no-state"])
def test_state_is_absent_when_none_was_sent(server_keys, browser, make_app, state):
    """CheckStateInAuthorizationResponse: absent if none was sent."""
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI, jarm={"authorization_signed_response_alg": "PS256"})
    query = {
        "client_id": app.client_id,
        "response_type": "code",
        "redirect_uri": REGISTERED_REDIRECT_URI,
        "response_mode": "jwt",
        "code_challenge": rp.pkce_pair()[1],
        "code_challenge_method": "S256",
        **({"state": state} if state else {}),
    }
    with override_settings(JARM=jarm_settings_of(FAPI2)):
        response = browser.get("/o/authorize/?" + urlencode(query))
    cb = callback_of(response, app.client_id, profile=FAPI2, response_type="code", state=state)
    assert "CheckStateInAuthorizationResponse" in process_callback(cb, error=None)


# Discovery and the server's keys ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("profile", list(ALLOWED_RESPONSE_TYPES), ids=["no-profile", FAPI1, FAPI2])
@pytest.mark.parametrize("path", ["/o/.well-known/openid-configuration", "/o/.well-known/oauth-authorization-server"])
def test_discovery_conditions(server_keys, profile, path):
    with override_settings(JARM=jarm_settings_of(profile)):
        document = Client().get(path).json()
    # CheckDiscEndpointResponseTypeCodeSupported
    assert "code" in document["response_types_supported"]
    # CheckDiscEndpointResponseModesSupportedContainsJwt
    assert "jwt" in document["response_modes_supported"]
    # CheckDiscEndpointAuthSignAlgValuesIsJsonArray, ...EncryptAlg..., ...EncryptEnc...: absent or an array
    for name in (
        "authorization_signing_alg_values_supported",
        "authorization_encryption_alg_values_supported",
        "authorization_encryption_enc_values_supported",
    ):
        assert isinstance(document.get(name, []), list)
    # CheckJwksUri (FAPI 2 with JARM)
    assert document["jwks_uri"] == "http://testserver/o/.well-known/jwks.json"
    assert "none" not in document["authorization_signing_alg_values_supported"]
    assert "RSA1_5" not in document["authorization_encryption_alg_values_supported"]


#: What discovery says under each profile, given active PS256, ES256, EdDSA keys and DOT's RS256 key.
ADVERTISED = {
    FAPI1: {
        "response_types_supported": ["code", "code id_token"],
        "response_modes_supported": ["fragment", "form_post", "query.jwt", "fragment.jwt", "form_post.jwt", "jwt"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_signing_alg_values_supported": ["PS256", "ES256"],
        "authorization_encryption_alg_values_supported": [
            "RSA-OAEP",
            "RSA-OAEP-256",
            "ECDH-ES",
            "ECDH-ES+A128KW",
            "ECDH-ES+A192KW",
            "ECDH-ES+A256KW",
            "A128KW",
            "A192KW",
            "A256KW",
            "A128GCMKW",
            "A192GCMKW",
            "A256GCMKW",
            "dir",
        ],
    },
    FAPI2: {
        "response_types_supported": ["code"],
        "response_modes_supported": ["query.jwt", "fragment.jwt", "form_post.jwt", "jwt"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_signing_alg_values_supported": ["PS256", "ES256", "EdDSA", "Ed25519"],
        "authorization_encryption_alg_values_supported": [
            "RSA-OAEP",
            "RSA-OAEP-256",
            "ECDH-ES",
            "ECDH-ES+A128KW",
            "ECDH-ES+A192KW",
            "ECDH-ES+A256KW",
        ],
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize("profile", [FAPI1, FAPI2])
def test_discovery_says_what_the_profile_enforces(server_keys, profile):
    with override_settings(JARM=jarm_settings_of(profile)):
        document = Client().get("/o/.well-known/openid-configuration").json()
        metadata = Client().get("/o/.well-known/oauth-authorization-server").json()
    assert {name: document[name] for name in ADVERTISED[profile]} == ADVERTISED[profile]
    assert metadata["response_types_supported"] == ["code"]  # DOT's RFC 8414 list is code and token
    assert metadata["code_challenge_methods_supported"] == ["S256"]


@pytest.mark.django_db
def test_discovery_without_a_profile_keeps_every_mode_and_plain_pkce(server_keys):
    document = Client().get("/o/.well-known/openid-configuration").json()
    assert sorted(document["response_types_supported"]) == sorted(RESPONSE_TYPES)
    assert document["response_modes_supported"] == [*PLAIN_MODES, "query.jwt", "fragment.jwt", "form_post.jwt", "jwt"]
    assert document["code_challenge_methods_supported"] == ["plain", "S256"]
    assert document["authorization_signing_alg_values_supported"] == ["RS256", "PS256", "ES256", "EdDSA", "Ed25519"]


@pytest.mark.django_db
@pytest.mark.parametrize("profile", list(ALLOWED_RESPONSE_TYPES), ids=["no-profile", FAPI1, FAPI2])
def test_discovery_matches_what_the_endpoint_accepts(server_keys, browser, make_app, profile):
    """A response type and mode pair succeeds exactly when discovery advertises both (and JARM 2.3.1 allows it)."""
    with override_settings(JARM=jarm_settings_of(profile)):
        document = Client().get("/o/.well-known/openid-configuration").json()
        for response_type in RESPONSE_TYPES:
            app = make_app(
                response_type,
                redirect_uris=REGISTERED_REDIRECT_URI,
                jarm={"authorization_signed_response_alg": SIGNING_ALGS[profile][-1]},
            )
            for mode in [*PLAIN_MODES, *JWT_MODES]:
                response, _ = authorize(browser, app, response_type, mode)
                delivery = rp.delivery_of(response, REGISTERED_REDIRECT_URI)
                names = [name for name, _ in delivery.params]
                if names == ["response"]:
                    cb = callback_of(response, app.client_id, profile=profile, response_type=response_type, state=STATE)
                    process_callback(cb, error=_unverified_claims(cb).get("error"))
                    params = cb.params
                else:
                    params = dict(delivery.params)
                succeeded = "error" not in params
                advertised = (
                    response_type in document["response_types_supported"]
                    and mode in document["response_modes_supported"]
                )
                # Pairs discovery cannot express: tokens never travel in the query unencrypted
                # (OAuth 2.0 Multiple Response Types 2.1, JARM 2.3.1); FAPI 1 serves plain modes to
                # code id_token only (5.2.2-2).
                pair_allowed = not (carries_tokens(response_type) and mode in ("query", "query.jwt")) and not (
                    profile == FAPI1 and response_type == "code" and mode in PLAIN_MODES
                )
                assert succeeded == (advertised and pair_allowed), (response_type, mode, params)
                if not succeeded and profile is not None and mode in PLAIN_MODES:
                    # A refused plain-mode request still never gets a token in the clear.
                    assert not {"code", "access_token", "id_token"} & set(params)


def _unverified_claims(cb: Callback) -> dict[str, Any]:
    token = dict(cb.delivery.params)["response"]
    return _b64json(token.split(".")[1])


@pytest.mark.django_db
def test_server_key_conditions(server_keys):
    keys = Client().get("/o/.well-known/jwks.json").json()["keys"]
    kids = [key.get("kid") for key in keys]
    # CheckForKeyIdInServerJWKs
    assert all(kids)
    # CheckDistinctKeyIdValueInServerJWKs
    assert len(kids) == len(set(kids))
    for key in keys:
        # FAPIEnsureMinimumServerKeyLength (RSA 2048, EC 160), FAPI2FinalEnsureMinimumServerKeyLength (RSA 2048, EC 224)
        if key["kty"] == "RSA":
            assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 >= 2048
        elif key["kty"] == "EC":
            assert {"P-256": 256, "P-384": 384, "P-521": 521}[key["crv"]] >= 224
        else:
            assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")
            # Signs under EdDSA and Ed25519 (RFC 9864): no alg, so ValidateJARMSignatureUsingKid matches both.
            assert "alg" not in key
    # DOT labels its RSA key RS256: PS256 responses come from our own key, published with alg PS256.
    assert {key.get("alg") for key in keys if key["kty"] == "RSA"} == {"RS256", "PS256"}


# What each profile forbids -----------------------------------------------------------------------


def refused(response: Any, app: Any, *, profile: str | None, response_type: str, error: str) -> Callback:
    """The refusal arrived as a JARM error, passing every condition the suite runs on an error."""
    cb = callback_of(response, app.client_id, profile=profile, response_type=response_type, state=STATE)
    process_callback(cb, error=error)
    return cb


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("profile", "registered", "response_type", "mode", "where"),
    [
        # FAPI 1.0 Advanced 5.2.2-2: code id_token, or code with a JWT mode; nothing else.
        (FAPI1, "code", "token", "jwt", "fragment"),
        (FAPI1, "token", "token", "fragment.jwt", "fragment"),
        (FAPI1, "id_token", "id_token", "form_post.jwt", "form_post"),
        (FAPI1, "id_token token", "id_token token", "jwt", "fragment"),
        (FAPI1, "code token", "code token", "jwt", "fragment"),
        (FAPI1, "code id_token token", "code id_token token", "fragment.jwt", "fragment"),
        # FAPI 2.0 Security Profile 5.3.2.2: code only (FAPI2SPFinalEnsureResponseType*Fails).
        (FAPI2, "code", "token", "jwt", "fragment"),
        (FAPI2, "code", "code id_token", "jwt", "fragment"),
        (FAPI2, "code id_token", "code id_token", None, "fragment"),
        (FAPI2, "code id_token", "code id_token", "form_post.jwt", "form_post"),
        (FAPI2, "id_token token", "id_token token", None, "fragment"),
        (FAPI2, "id_token token", "id_token token", "fragment", "fragment"),
        (FAPI2, "token", "token", "query.jwt", "fragment"),
        (FAPI2, "code id_token token", "code id_token token", "jwt", "fragment"),
    ],
)
def test_forbidden_response_types(server_keys, browser, make_app, profile, registered, response_type, mode, where):
    """unsupported_response_type in a JWT, never a token, even for a client DOT would serve (or refuse otherwise)."""
    app = make_app(registered, redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM=jarm_settings_of(profile)):
        response, _ = authorize(browser, app, response_type, mode)
    cb = refused(response, app, profile=profile, response_type=response_type, error="unsupported_response_type")
    assert cb.delivery.mode == where


@pytest.mark.django_db
@pytest.mark.parametrize("mode", [None, "fragment", "form_post"])
def test_fapi1_refuses_token_in_a_plain_mode_without_a_token(server_keys, browser, make_app, mode):
    """A plain-mode request FAPI 1 does not serve gets its refusal in that mode: an error, no token."""
    app = make_app("token", redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM=jarm_settings_of(FAPI1)):
        response, _ = authorize(browser, app, "token", mode)
    delivery = rp.delivery_of(response, REGISTERED_REDIRECT_URI)
    assert delivery.mode == (mode or "fragment")
    assert dict(delivery.params) == {
        "error": "unsupported_response_type",
        "error_description": "FAPI 1.0 Advanced allows only response_type=code or response_type=code id_token.",
        "state": STATE,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("profile", "response_type", "mode", "where"),
    [
        # FAPI 1 EnsureResponseModeQuery: code with response_mode=query is an error.
        (FAPI1, "code", "query", "query"),
        (FAPI1, "code", None, "query"),
        (FAPI1, "code", "fragment", "fragment"),
        (FAPI1, "code", "form_post", "form_post"),
        # FAPI 2.0 Message Signing 5.4.1: every response through JARM.
        (FAPI2, "code", "query", "query"),
        (FAPI2, "code", None, "query"),
        (FAPI2, "code", "fragment", "fragment"),
        (FAPI2, "code", "form_post", "form_post"),
    ],
)
def test_plain_modes_are_refused_inside_a_jwt(server_keys, browser, make_app, profile, response_type, mode, where):
    app = make_app(response_type, redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM=jarm_settings_of(profile)):
        response, _ = authorize(browser, app, response_type, mode)
    cb = refused(response, app, profile=profile, response_type=response_type, error="invalid_request")
    assert cb.delivery.mode == where
    assert "JWT response mode" in cb.params["error_description"]


@pytest.mark.django_db
@pytest.mark.parametrize("profile", [FAPI1, FAPI2])
@pytest.mark.parametrize("mode", ["web_message.jwt", ["jwt", "jwt"]], ids=["unknown", "repeated"])
def test_an_unknown_mode_is_answered_plainly(server_keys, browser, make_app, profile, mode):
    """A mode that cannot be honoured gets invalid_request in the plain default mode, as for any client.

    The suite accepts it (AddPlainErrorResponseAsAuthorizationEndpointResponseForJARM: an error and no
    response); no code travels.
    """
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI)
    query = {
        "client_id": app.client_id,
        "response_type": "code",
        "redirect_uri": REGISTERED_REDIRECT_URI,
        "state": STATE,
        "code_challenge": rp.pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    modes = mode if isinstance(mode, list) else [mode]
    with override_settings(JARM=jarm_settings_of(profile)):
        response = browser.get("/o/authorize/?" + urlencode([*query.items(), *(("response_mode", m) for m in modes)]))
    params = dict(rp.delivery_of(response, REGISTERED_REDIRECT_URI).params)
    assert params["error"] == "invalid_request"
    assert "response" not in params
    assert "code" not in params


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["fragment", "form_post"])
def test_fapi1_code_id_token_may_use_a_plain_mode(server_keys, browser, make_app, mode):
    """FAPI 1.0 Advanced 5.2.2-2: code id_token needs no JARM (the ID token is a detached signature)."""
    app = make_app("code id_token", redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM=jarm_settings_of(FAPI1)):
        response, _ = authorize(browser, app, "code id_token", mode)
    params = dict(rp.delivery_of(response, REGISTERED_REDIRECT_URI).params)
    assert {"code", "id_token", "state"} <= set(params)


def _dot_settings(**changes: Any) -> dict[str, Any]:
    return {**django_settings.OAUTH2_PROVIDER, **changes}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("profile", "pkce", "dot_requires_pkce"),
    [
        (FAPI2, (None, None), False),  # PKCE required by the profile, whatever DOT says
        (FAPI2, (None, None), True),
        (FAPI2, ("c" * 43, "plain"), True),  # FAPI2SPFinalPAREnsurePlainPKCERejected
        (FAPI2, ("c" * 43, None), True),  # RFC 7636 4.3: no method means plain
        (FAPI1, ("c" * 43, "plain"), True),
        (FAPI1, ("c" * 43, None), False),
    ],
    ids=[
        "fapi2-missing",
        "fapi2-missing-dot-requires",
        "fapi2-plain",
        "fapi2-no-method",
        "fapi1-plain",
        "fapi1-no-method",
    ],
)
def test_pkce_other_than_s256_is_refused(server_keys, browser, make_app, profile, pkce, dot_requires_pkce):
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(
        JARM=jarm_settings_of(profile), OAUTH2_PROVIDER=_dot_settings(PKCE_REQUIRED=dot_requires_pkce)
    ):
        response, _ = authorize(browser, app, "code", "jwt", pkce=pkce)
    cb = refused(response, app, profile=profile, response_type="code", error="invalid_request")
    assert cb.delivery.mode == "query"
    assert "S256" in cb.params["error_description"]


@pytest.mark.django_db
def test_fapi1_accepts_a_request_without_pkce(server_keys, browser, make_app):
    """FAPI 1.0 Advanced asks PKCE only with PAR; the suite's non-PAR FAPI 1 plans send none."""
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM=jarm_settings_of(FAPI1), OAUTH2_PROVIDER=_dot_settings(PKCE_REQUIRED=False)):
        response, _ = authorize(browser, app, "code", "jwt", pkce=(None, None))
    cb = callback_of(response, app.client_id, profile=FAPI1, response_type="code", state=STATE)
    process_callback(cb, error=None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("profile", "client_settings"),
    [
        (FAPI1, {"authorization_signed_response_alg": "RS256"}),
        (FAPI1, {"authorization_signed_response_alg": "EdDSA"}),
        (FAPI1, {"authorization_signed_response_alg": "HS256"}),
        (FAPI2, {"authorization_signed_response_alg": "RS256"}),
        (FAPI2, {"authorization_signed_response_alg": "ES384"}),
        (FAPI2, {"authorization_signed_response_alg": "HS512"}),
        (FAPI2, {"authorization_signed_response_alg": "PS256", "authorization_encrypted_response_alg": "A128KW"}),
        (FAPI2, {"authorization_signed_response_alg": "PS256", "authorization_encrypted_response_alg": "dir"}),
    ],
    ids=[
        "fapi1-rs256",
        "fapi1-eddsa",
        "fapi1-hs256",
        "fapi2-rs256",
        "fapi2-es384",
        "fapi2-hs512",
        "fapi2-a128kw",
        "fapi2-dir",
    ],
)
def test_algorithms_outside_the_profile_never_sign(server_keys, browser, make_app, profile, client_settings):
    """A client set to an algorithm the profile forbids gets server_error, unsigned and without a code.

    The admin and the registration refuse such settings, and ``check --database`` reports rows
    stored before the profile was set (django_jarm.E011): these requests cannot be answered in a JWT.
    """
    app = make_app(
        "code",
        redirect_uris=REGISTERED_REDIRECT_URI,
        hash_client_secret=False,
        client_secret=CLIENT_SECRET,
        jarm=client_settings,
    )
    with override_settings(JARM=jarm_settings_of(profile)):
        response, _ = authorize(browser, app, "code", "jwt")
    assert response.status_code == (303 if profile == FAPI2 else 302)
    delivery = rp.delivery_of(response, REGISTERED_REDIRECT_URI)
    assert delivery.mode == "query"
    assert dict(delivery.params) == {
        "error": "server_error",
        "error_description": "The authorization server cannot produce a signed response for this client.",
        "state": STATE,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("profile", [FAPI1, FAPI2])
@pytest.mark.parametrize("lifetime", [600, 900])
def test_response_lifetime_never_exceeds_the_profile_bound(server_keys, browser, make_app, profile, lifetime):
    """FAPI 1.0 Advanced 5.2.2.2 and ValidateJARMExpRecommendations: exp at most 10 minutes ahead."""
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM=jarm_settings_of(profile, RESPONSE_LIFETIME=lifetime)):
        response, _ = authorize(browser, app, "code", "jwt")
    cb = callback_of(response, app.client_id, profile=profile, response_type="code", state=STATE)
    process_callback(cb, error=None)
    assert cb.claims["exp"] - cb.claims["iat"] == 600


@pytest.mark.django_db
def test_without_a_profile_the_lifetime_is_the_setting(server_keys, browser, make_app):
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM={"RESPONSE_LIFETIME": 900}):
        response, _ = authorize(browser, app, "code", "jwt")
    token = dict(rp.delivery_of(response, REGISTERED_REDIRECT_URI).params)["response"]
    claims = _b64json(token.split(".")[1])
    assert claims["exp"] - claims["iat"] == 900


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("jarm", "status"),
    [({"PROFILE": FAPI2}, 303), ({"PROFILE": FAPI2, "REDIRECT_STATUS": 302}, 302), ({"PROFILE": FAPI1}, 302)],
    ids=["fapi2-default", "fapi2-explicit-302", "fapi1-default"],
)
def test_redirect_status(server_keys, browser, make_app, jarm, status):
    """FAPI 2.0 Security Profile 5.3.2.2 recommends 303; a REDIRECT_STATUS that is set wins."""
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM=jarm):
        response, _ = authorize(browser, app, "code", "jwt")
    assert response.status_code == status


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("profile", "response_type"), [(None, "code id_token"), (None, "id_token token"), (FAPI1, "code id_token")]
)
def test_query_jwt_with_tokens_needs_encryption(server_keys, browser, make_app, profile, response_type):
    """JARM 2.3.1: query.jwt with a token response type unencrypted is invalid_request, in fragment.jwt."""
    app = make_app(response_type, redirect_uris=REGISTERED_REDIRECT_URI)
    with override_settings(JARM=jarm_settings_of(profile)):
        response, _ = authorize(browser, app, response_type, "query.jwt")
    cb = refused(response, app, profile=profile, response_type=response_type, error="invalid_request")
    assert cb.delivery.mode == "fragment"


@pytest.mark.django_db
def test_ed25519_and_eddsa_clients_share_the_key(server_keys, browser, make_app):
    """RFC 9864: one Ed25519 server key answers clients registered with either name, each under its own."""
    headers = []
    for alg in ("EdDSA", "Ed25519"):
        app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI, jarm={"authorization_signed_response_alg": alg})
        with override_settings(JARM=jarm_settings_of(FAPI2)):
            response, _ = authorize(browser, app, "code", "jwt")
        cb = callback_of(response, app.client_id, profile=FAPI2, response_type="code", state=STATE)
        assert "FAPI2ValidateJarmSigningAlg" in process_callback(cb, error=None)
        headers.append(cb.header)
    assert [header["alg"] for header in headers] == ["EdDSA", "Ed25519"]
    assert headers[0]["kid"] == headers[1]["kid"]
