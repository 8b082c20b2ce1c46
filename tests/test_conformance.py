"""The OpenID conformance suite's JARM checks that apply to a server, run over real flows.

Each check is named after the suite's condition class it mirrors (conformance-suite,
``condition/client/``). They are written against raw HTTP answers and joserfc, not our code.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections import Counter
from typing import Any

import pytest
from django.test import Client, override_settings
from joserfc import jwt
from joserfc.jwk import KeySet

from django_jarm import par
from django_jarm.keys import generate_server_key
from tests import rp

REGISTERED_REDIRECT_URI = "https://rp.example/cb?dummy1=lorem&dummy2=ipsum"
STATE = "xyz-state-123"
JWT_STANDARD_CLAIMS = {"sub", "aud", "exp", "nbf", "iat", "jti"}


def _b64json(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


# The checks --------------------------------------------------------------------------------


def extract_jarm_from_callback(response: Any) -> tuple[rp.Delivery, str]:
    """ExtractJARMFromURLQuery: ``response`` present, base64url and dots only, parses as a JWT."""
    delivery = rp.delivery_of(response, REGISTERED_REDIRECT_URI)
    params = dict(delivery.params)
    assert "response" in params, "no response parameter"
    token = params["response"]
    assert re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", token), "not a compact JWS"
    return delivery, token


def reject_non_jarm_responses_in_url_query(response: Any) -> None:
    """RejectNonJarmResponsesInUrlQuery (+ RejectAuthCodeInUrlQuery/Fragment, RejectErrorInUrlFragment)."""
    if response.status_code not in (302, 303):
        return
    location = response["Location"]
    query = location.split("#", 1)[0].split("?", 1)[1] if "?" in location.split("#", 1)[0] else ""
    fragment = location.split("#", 1)[1] if "#" in location else ""
    names = [pair.split("=", 1)[0] for pair in query.split("&") if pair]
    assert [n for n in names if n not in ("response", "dummy1", "dummy2")] == []
    fragment_names = [pair.split("=", 1)[0] for pair in fragment.split("&") if pair]
    assert [n for n in fragment_names if n != "response"] == []


def check_matching_callback_parameters(delivery: rp.Delivery, response: Any) -> None:
    """CheckMatchingCallbackParameters: the redirect URI's registered query survives."""
    if response.status_code in (302, 303):
        assert "dummy1=lorem" in response["Location"]
        assert "dummy2=ipsum" in response["Location"]
    else:
        assert delivery.target == REGISTERED_REDIRECT_URI


def validate_jarm_response(claims: dict[str, Any], *, issuer: str, client_id: str) -> None:
    """ValidateJARMResponse: iss, aud, exp (and iat when present)."""
    now = time.time()
    assert claims.get("iss") == issuer
    aud = claims.get("aud")
    assert aud == client_id or (isinstance(aud, list) and client_id in aud)
    assert "exp" in claims
    assert claims["exp"] >= now - 5 * 60, "exp in the past"
    assert claims["exp"] < now + 50 * 365 * 24 * 3600, "exp in milliseconds?"
    if "iat" in claims:
        assert claims["iat"] <= now + 5 * 60
        assert claims["iat"] >= now - 24 * 3600


def validate_jarm_exp_recommendations(claims: dict[str, Any]) -> None:
    """ValidateJARMExpRecommendations: exp <= now + 10 min (+5 skew) and >= now + 10 s."""
    now = time.time()
    assert claims["exp"] <= now + 15 * 60
    assert claims["exp"] >= now + 10 - 2  # two seconds for the time the test itself takes


def validate_jarm_signature_using_kid(token: str, server_jwks: dict[str, Any]) -> dict[str, Any]:
    """ValidateJARMSignatureUsingKid: kid in header, exactly one fitting key, signature verifies."""
    header = _b64json(token.split(".")[0])
    assert "kid" in header, "JARM JWS without kid"
    kty = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}[header["alg"][:2]]
    candidates = [
        key
        for key in server_jwks["keys"]
        if key.get("kid") == header["kid"]
        and key["kty"] == kty
        and key.get("alg", header["alg"]) == header["alg"]
        and key.get("use", "sig") == "sig"
    ]
    assert len(candidates) == 1, f"{len(candidates)} keys fit kid {header['kid']}"
    decoded = jwt.decode(token, KeySet.import_key_set({"keys": candidates}), algorithms=[header["alg"]])
    return dict(decoded.claims)


def validate_jarm_signing_alg(token: str, discovery: dict[str, Any]) -> None:
    """ValidateJARMSigningAlg: alg listed in authorization_signing_alg_values_supported."""
    assert _b64json(token.split(".")[0])["alg"] in discovery["authorization_signing_alg_values_supported"]


def fapi1_validate_jarm_signing_alg(token: str) -> None:
    assert _b64json(token.split(".")[0])["alg"] in ("PS256", "ES256")


def fapi2_validate_jarm_signing_alg(token: str) -> None:
    assert _b64json(token.split(".")[0])["alg"] in ("PS256", "ES256", "EdDSA", "Ed25519")


def authorization_response_of(claims: dict[str, Any]) -> dict[str, Any]:
    """ExtractAuthorizationEndpointResponseFromJARMResponse: claims minus JWT claims (keeps iss)."""
    return {k: v for k, v in claims.items() if k not in JWT_STANDARD_CLAIMS}


def validate_successful_jarm_response(params: dict[str, Any]) -> None:
    """ValidateSuccessfulJARMResponseFromAuthorizationEndpoint: nothing beyond code, state, iss."""
    assert set(params) <= {"code", "state", "session_state", "iss"}, set(params)


def check_if_authorization_endpoint_error(params: dict[str, Any]) -> None:
    assert "error" not in params


def check_state(params: dict[str, Any], sent: str | None) -> None:
    """CheckStateInAuthorizationResponse."""
    if sent is None:
        assert "state" not in params
    else:
        assert params.get("state") == sent


def require_iss(params: dict[str, Any], issuer: str) -> None:
    """ValidateIssIfPresentInAuthorizationResponse / RequireIssInAuthorizationResponse."""
    assert params.get("iss") == issuer


def ensure_minimum_code_length_and_entropy(code: str) -> None:
    """EnsureMinimumAuthorizationCodeLength / EnsureMinimumAuthorizationCodeEntropy (96 bits measured)."""
    assert len(code) >= 22
    counts = Counter(code)
    per_char = -sum(c / len(code) * math.log2(c / len(code)) for c in counts.values())
    assert per_char * len(code) >= 96


def check_unexpected_parameters_in_error_response(params: dict[str, Any]) -> None:
    """CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint."""
    assert set(params) <= {"error", "error_description", "error_uri", "state", "session_state", "iss"}


# Discovery and keys -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/o/.well-known/openid-configuration", "/o/.well-known/oauth-authorization-server"])
def test_discovery_checks(path):
    generate_server_key("PS256")
    document = Client().get(path).json()
    # CheckDiscEndpointResponseTypeCodeSupported
    assert "code" in document["response_types_supported"]
    # CheckDiscEndpointResponseModesSupportedContainsJwt
    assert "jwt" in document["response_modes_supported"]
    # CheckDiscEndpointAuth{Sign,EncryptAlg,EncryptEnc}ValuesIsJsonArray (absent is fine)
    for name in (
        "authorization_signing_alg_values_supported",
        "authorization_encryption_alg_values_supported",
        "authorization_encryption_enc_values_supported",
    ):
        assert isinstance(document.get(name, []), list)
    assert "none" not in document["authorization_signing_alg_values_supported"]
    # CheckJwksUri (FAPI 2)
    assert document["jwks_uri"] == "http://testserver/o/.well-known/jwks.json"


@pytest.mark.django_db
def test_server_key_checks():
    for alg in ("PS256", "ES256", "EdDSA"):
        generate_server_key(alg)
    keys = Client().get("/o/.well-known/jwks.json").json()["keys"]
    # CheckForKeyIdInServerJWKs, CheckDistinctKeyIdValueInServerJWKs
    kids = [key.get("kid") for key in keys]
    assert all(kids)
    assert len(kids) == len(set(kids))
    # FAPI2FinalEnsureMinimumServerKeyLength: RSA >= 2048 bits, EC >= 224 bits
    for key in keys:
        if key["kty"] == "RSA":
            assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 >= 2048
        elif key["kty"] == "EC":
            assert key["crv"] in ("P-256", "P-384", "P-521")


# Test plans -------------------------------------------------------------------------------


def run_success_checks(response: Any, app: Any, discovery: dict[str, Any], *, state: str | None) -> dict[str, Any]:
    jwks = Client().get("/o/.well-known/jwks.json").json()
    reject_non_jarm_responses_in_url_query(response)
    delivery, token = extract_jarm_from_callback(response)
    assert [name for name, _ in delivery.params] == ["response"]
    claims = validate_jarm_signature_using_kid(token, jwks)
    validate_jarm_response(claims, issuer=discovery["issuer"], client_id=app.client_id)
    validate_jarm_exp_recommendations(claims)
    validate_jarm_signing_alg(token, discovery)
    params = authorization_response_of(claims)
    check_matching_callback_parameters(delivery, response)
    check_state(params, state)
    require_iss(params, discovery["issuer"])
    return params | {"_token": token}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("plan", "alg"),
    [
        ("fapi1-advanced", "PS256"),
        ("fapi1-advanced", "ES256"),
        ("fapi2-message-signing", "EdDSA"),
        (None, "RS256"),
    ],
)
@pytest.mark.parametrize("mode", ["jwt", "query.jwt", "form_post.jwt"])
@pytest.mark.parametrize("state", [STATE, None])
def test_code_flow_plans(browser, make_app, authorize, discovery, redeem, plan, alg, mode, state):
    """FAPI 1 Advanced (JARM variant), FAPI 2 Message Signing and the OIDCC security-profile shape."""
    if alg != "RS256":
        generate_server_key(alg)
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI, jarm={"authorization_signed_response_alg": alg})
    with override_settings(JARM={"PROFILE": plan} if plan else {}):
        # FAPI 2.0 requires pushed authorization requests wherever DOT serves them.
        pushed = par.par_required()
        response, verifier, _ = authorize(
            browser, app, "code", mode, state=state, redirect_uri=REGISTERED_REDIRECT_URI, pushed=pushed
        )
        params = run_success_checks(response, app, discovery(), state=state)
    token = params.pop("_token")
    if plan == "fapi1-advanced":
        fapi1_validate_jarm_signing_alg(token)
    elif plan == "fapi2-message-signing":
        fapi2_validate_jarm_signing_alg(token)
    validate_successful_jarm_response(params)
    check_if_authorization_endpoint_error(params)
    ensure_minimum_code_length_and_entropy(params["code"])
    assert redeem(app, params["code"], verifier, redirect_uri=REGISTERED_REDIRECT_URI).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", ["code id_token", "code id_token token", "id_token token"])
@pytest.mark.parametrize("mode", ["jwt", "form_post.jwt"])
def test_hybrid_and_implicit_plans(browser, make_app, authorize, discovery, response_type, mode):
    app = make_app(response_type, redirect_uris=REGISTERED_REDIRECT_URI)
    response, _, _ = authorize(browser, app, response_type, mode, state=STATE, redirect_uri=REGISTERED_REDIRECT_URI)
    params = run_success_checks(response, app, discovery(), state=STATE)
    params.pop("_token")
    check_if_authorization_endpoint_error(params)
    assert "id_token" in params


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scenario", "expected_error"),
    [("deny", "access_denied"), ("bad-scope", "invalid_scope"), ("prompt-none", "login_required")],
)
@pytest.mark.parametrize("mode", ["jwt", "form_post.jwt"])
def test_error_plans(browser, make_app, authorize, discovery, scenario, expected_error, mode):
    app = make_app("code", redirect_uris=REGISTERED_REDIRECT_URI, skip_authorization=scenario != "deny")
    kwargs: dict[str, Any] = {"state": STATE, "redirect_uri": REGISTERED_REDIRECT_URI}
    if scenario == "bad-scope":
        kwargs["scope"] = "openid superuser"
    if scenario == "prompt-none":
        response, _, _ = authorize(Client(), app, "code", mode, extra={"prompt": "none"}, **kwargs)
    else:
        response, _, _ = authorize(browser, app, "code", mode, **kwargs)
    if scenario == "deny":
        form = response.context["form"]
        data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
        response = browser.post(response.request["PATH_INFO"] + "?" + response.request["QUERY_STRING"], data)
    params = run_success_checks(response, app, discovery(), state=STATE)
    params.pop("_token")
    assert params["error"] == expected_error
    check_unexpected_parameters_in_error_response(params)
