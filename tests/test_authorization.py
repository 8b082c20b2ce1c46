"""End-to-end authorization flows through DOT's real authorization view.

Every JWT is verified with joserfc against the JWKS served by the server (tests/rp.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

from django_jarm.keys import activate_server_key, generate_server_key
from tests import rp
from tests.conftest import REDIRECT_URI, RESPONSE_TYPES

JWT_MODES = ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"]
TOKEN_BEARING = [rt for rt in RESPONSE_TYPES if rt != "code"]

#: Claims a successful response must carry for each response type (besides iss, aud, exp, iat).
SUCCESS_PARAMS = {
    "code": {"code", "state"},
    "token": {"access_token", "token_type", "expires_in", "scope", "state"},
    "id_token": {"id_token", "state"},
    "id_token token": {"id_token", "access_token", "token_type", "expires_in", "scope", "state"},
    "code id_token": {"code", "id_token", "state"},
    "code token": {"code", "access_token", "token_type", "expires_in", "scope", "state"},
    "code id_token token": {"code", "id_token", "access_token", "token_type", "expires_in", "scope", "state"},
}

EXPECTED_DELIVERY = {"query.jwt": "query", "fragment.jwt": "fragment", "form_post.jwt": "form_post"}


def expected_delivery(response_type: str, mode: str) -> str:
    if mode == "jwt":
        return "query" if response_type == "code" else "fragment"
    return EXPECTED_DELIVERY[mode]


def success_cases() -> list[Any]:
    return [
        pytest.param(rt, mode, id=f"{rt.replace(' ', '+')}-{mode}")
        for rt in RESPONSE_TYPES
        for mode in JWT_MODES
        if not (mode == "query.jwt" and rt != "code")
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("response_type", "mode"), success_cases())
def test_success_is_one_signed_jwt(browser, make_app, authorize, verify, redeem, response_type, mode):
    app = make_app(response_type)
    response, verifier, _ = authorize(browser, app, response_type, mode)

    delivery, verified = verify(response, app)

    assert delivery.mode == expected_delivery(response_type, mode)
    assert verified.header == {"alg": "RS256", "kid": verified.header["kid"]}
    claims = verified.claims
    assert set(claims) == {"iss", "aud", "exp", "iat"} | SUCCESS_PARAMS[response_type]
    assert claims["state"] == "af0ifjsldkj"
    assert claims["exp"] - claims["iat"] == 120
    if "access_token" in claims:
        assert claims["token_type"] == "Bearer"
        assert isinstance(claims["expires_in"], int)
        assert claims["scope"] == "openid read"
    if "code" in claims:
        token_response = redeem(app, claims["code"], verifier)
        assert token_response.status_code == 200, token_response.content
        assert token_response.json()["access_token"]


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", RESPONSE_TYPES)
@pytest.mark.parametrize("mode", ["query", "fragment", "form_post", None])
def test_plain_modes_keep_working(browser, make_app, authorize, response_type, mode):
    app = make_app(response_type)
    response, _, _ = authorize(browser, app, response_type, mode)
    if mode == "query" and response_type != "code":
        # Tokens never travel in the query: plain invalid_request in the fragment.
        delivery = rp.delivery_of(response, REDIRECT_URI)
        assert delivery.mode == "fragment"
        assert dict(delivery.params)["error"] == "invalid_request"
        return
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == (mode or ("query" if response_type == "code" else "fragment"))
    assert {name for name, _ in delivery.params} == SUCCESS_PARAMS[response_type]
    assert "response" not in dict(delivery.params)


@pytest.mark.django_db
def test_redirect_uri_query_survives(browser, make_app, authorize, verify):
    redirect_uri = "https://rp.example/cb?dummy1=lorem&dummy2=ipsum"
    app = make_app("code", redirect_uris=redirect_uri)
    response, _, _ = authorize(browser, app, "code", "query.jwt", redirect_uri=redirect_uri)
    assert response["Location"].startswith(redirect_uri + "&response=")
    _, verified = verify(response, app, redirect_uri=redirect_uri)
    assert set(verified.params) == {"iss", "code", "state"}


@pytest.mark.django_db
def test_no_state_means_no_state_claim(browser, make_app, authorize, verify):
    app = make_app("code")
    response, _, _ = authorize(browser, app, "code", "jwt", state=None)
    _, verified = verify(response, app)
    assert "state" not in verified.claims


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["jwt", "fragment.jwt"])
def test_rfc9207_iss_parameter_lives_only_in_the_jwt(browser, make_app, authorize, verify, mode):
    app = make_app("code")
    with override_settings(OAUTH2_PROVIDER={**_dot_settings(), "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True}):
        response, _, _ = authorize(browser, app, "code", mode)
        plain, _, _ = authorize(browser, app, "code", "query")
    _, verified = verify(response, app)  # verify() fails on any parameter outside the JWT
    assert verified.claims["iss"] == "http://testserver/o"
    assert dict(rp.delivery_of(plain, REDIRECT_URI).params)["iss"] == "http://testserver/o"


def _dot_settings() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.OAUTH2_PROVIDER)


# Consent page ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", RESPONSE_TYPES)
@pytest.mark.parametrize("mode", ["jwt", "form_post.jwt"])
def test_consent_post_keeps_the_mode(browser, make_app, authorize, verify, redeem, response_type, mode):
    app = make_app(response_type, skip_authorization=False)
    page, verifier, _ = authorize(browser, app, response_type, mode)
    assert page.status_code == 200
    assert f'name="response_mode" value="{mode}"' in page.content.decode()

    data = _form_data(page)
    data["allow"] = "Authorize"
    response = browser.post("/o/authorize/", data)  # no query string: the hidden field carries the mode

    delivery, verified = verify(response, app)
    assert delivery.mode == expected_delivery(response_type, mode)
    assert set(verified.params) - {"iss"} == SUCCESS_PARAMS[response_type]
    if "code" in verified.claims:
        assert redeem(app, verified.claims["code"], verifier).status_code == 200


def _form_data(page: Any) -> dict[str, str]:
    form = page.context["form"]
    return {name: form[name].value() or "" for name in form.fields if name != "allow"}


@pytest.mark.django_db
@pytest.mark.parametrize(("response_type", "mode"), success_cases())
def test_deny_is_wrapped(browser, make_app, authorize, verify, response_type, mode):
    app = make_app(response_type, skip_authorization=False)
    page, _, _ = authorize(browser, app, response_type, mode)
    response = browser.post(page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"], _form_data(page))

    delivery, verified = verify(response, app)
    assert delivery.mode == expected_delivery(response_type, mode)
    assert verified.params == {"iss": "http://testserver/o", "error": "access_denied", "state": "af0ifjsldkj"}


@pytest.mark.django_db
def test_tampered_mode_on_consent_post_is_revalidated(browser, make_app, authorize, verify):
    app = make_app("code", skip_authorization=False, jarm={"require_jarm": True})
    page, _, _ = authorize(browser, app, "code", "jwt")
    data = {**_form_data(page), "response_mode": "query", "allow": "Authorize"}
    response = browser.post("/o/authorize/", data)
    _, verified = verify(response, app)
    assert verified.params["error"] == "invalid_request"
    assert "code" not in verified.params


@pytest.mark.django_db
def test_conflicting_mode_in_url_and_form_is_refused(browser, make_app, authorize):
    app = make_app("code", skip_authorization=False)
    page, _, _ = authorize(browser, app, "code", "jwt")
    data = {**_form_data(page), "allow": "Authorize"}
    response = browser.post("/o/authorize/?response_mode=query", data)
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == "query"
    assert dict(delivery.params)["error"] == "invalid_request"
    assert "code" not in dict(delivery.params)


@pytest.mark.django_db
@pytest.mark.parametrize("allow", [True, False])
def test_tampered_redirect_uri_on_consent_post_is_never_followed(browser, make_app, authorize, allow):
    app = make_app("code", skip_authorization=False)
    page, _, _ = authorize(browser, app, "code", "jwt")
    data = {**_form_data(page), "redirect_uri": "https://attacker.example/cb"}
    if allow:
        data["allow"] = "Authorize"
    response = browser.post("/o/authorize/", data)
    assert response.status_code == 400
    assert "Location" not in response


@pytest.mark.django_db
def test_unknown_client_on_consent_post_is_a_form_error(browser, make_app, authorize):
    app = make_app("code", skip_authorization=False)
    page, _, _ = authorize(browser, app, "code", "jwt")
    response = browser.post("/o/authorize/", {**_form_data(page), "client_id": "nobody", "allow": "Authorize"})
    assert response.status_code == 200
    assert "Location" not in response


# Redirectable errors ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", RESPONSE_TYPES)
@pytest.mark.parametrize("mode", ["jwt", "fragment.jwt", "form_post.jwt"])
def test_invalid_scope_is_wrapped(browser, make_app, authorize, verify, response_type, mode):
    app = make_app(response_type)
    response, _, _ = authorize(browser, app, response_type, mode, scope="openid admin")
    delivery, verified = verify(response, app)
    assert delivery.mode == expected_delivery(response_type, mode)
    assert verified.params["error"] == "invalid_scope"
    assert verified.params["state"] == "af0ifjsldkj"
    assert set(verified.params) <= {"iss", "error", "error_description", "error_uri", "state"}


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", [rt for rt in RESPONSE_TYPES if "id_token" in rt])
def test_missing_nonce_is_wrapped(browser, make_app, authorize, verify, response_type):
    app = make_app(response_type)
    response, _, _ = authorize(browser, app, response_type, "jwt", nonce=None)
    delivery, verified = verify(response, app)
    assert delivery.mode == "fragment"
    assert verified.params["error"] == "invalid_request"
    assert "nonce" in verified.params["error_description"]
    assert verified.params["state"] == "af0ifjsldkj"


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", RESPONSE_TYPES)
@pytest.mark.parametrize("mode", ["jwt", "form_post.jwt"])
def test_anonymous_prompt_none_is_login_required(make_app, authorize, verify, response_type, mode):
    app = make_app(response_type)
    response, _, _ = authorize(Client(), app, response_type, mode, extra={"prompt": "none"})
    delivery, verified = verify(response, app)
    assert delivery.mode == expected_delivery(response_type, mode)
    assert verified.params == {
        "iss": "http://testserver/o",
        "error": "login_required",
        "state": "af0ifjsldkj",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "unknown-client"},
        {"redirect_uri": "https://attacker.example/cb"},
    ],
    ids=["bad-client", "bad-redirect-uri"],
)
@pytest.mark.parametrize("user_agent", ["browser", "anonymous"])
def test_bad_client_or_redirect_uri_is_never_redirected(request, make_app, authorize, change, user_agent):
    app = make_app("code")
    client = request.getfixturevalue("browser") if user_agent == "browser" else Client()
    _, _, query = authorize(Client(), app, "code", "jwt", extra={"prompt": "none"})
    query = [(k, change.get(k, v)) for k, v in query]
    response = client.get("/o/authorize/", query)
    assert response.status_code == 400
    assert "Location" not in response


@pytest.mark.django_db
@pytest.mark.parametrize(("response_type", "default"), [("code", "query"), ("code id_token", "fragment")])
@pytest.mark.parametrize("modes", [["query.jwt.evil"], ["web_message.jwt"], ["jwt", "query"], ["jwt", "jwt"]])
def test_unknown_or_repeated_mode_is_plain_invalid_request(browser, make_app, authorize, response_type, default, modes):
    app = make_app(response_type)
    response, _, _ = authorize(browser, app, response_type, modes)
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == default
    params = dict(delivery.params)
    assert params["error"] == "invalid_request"
    assert params["state"] == "af0ifjsldkj"
    assert "code" not in params
    assert "id_token" not in params


@pytest.mark.django_db
def test_mode_not_offered_by_the_server_is_plain_invalid_request(browser, make_app, authorize):
    app = make_app("code")
    with override_settings(JARM={"RESPONSE_MODES_SUPPORTED": ["query", "fragment", "jwt", "query.jwt"]}):
        response, _, _ = authorize(browser, app, "code", "form_post.jwt")
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == "query"
    assert dict(delivery.params)["error"] == "invalid_request"


# Policy refusals are wrapped -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", TOKEN_BEARING)
def test_query_jwt_with_tokens_is_refused(browser, make_app, authorize, verify, response_type):
    app = make_app(response_type)
    response, _, _ = authorize(browser, app, response_type, "query.jwt")
    delivery, verified = verify(response, app)
    assert delivery.mode == "fragment"
    assert verified.params["error"] == "invalid_request"
    assert "encrypted" in verified.params["error_description"]
    assert not {"code", "access_token", "id_token"} & set(verified.params)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "delivered"),
    [("query", "query"), ("fragment", "fragment"), ("form_post", "form_post"), (None, "query")],
)
def test_client_requiring_jarm_refuses_plain_modes(browser, make_app, authorize, verify, mode, delivered):
    app = make_app("code", jarm={"require_jarm": True})
    response, _, _ = authorize(browser, app, "code", mode)
    delivery, verified = verify(response, app)
    assert delivery.mode == delivered
    assert verified.params["error"] == "invalid_request"
    assert verified.params["state"] == "af0ifjsldkj"


@pytest.mark.django_db
def test_global_require_jarm(browser, make_app, authorize, verify):
    app = make_app("code")
    with override_settings(JARM={"REQUIRE_JARM": True}):
        refused, _, _ = authorize(browser, app, "code", "query")
        accepted, _, _ = authorize(browser, app, "code", "jwt")
    assert verify(refused, app)[1].params["error"] == "invalid_request"
    assert "code" in verify(accepted, app)[1].params


@pytest.mark.django_db
def test_client_allow_list(browser, make_app, authorize, verify):
    app = make_app("code", jarm={"response_modes": ["jwt"]})
    allowed, _, _ = authorize(browser, app, "code", "jwt")
    resolved, _, _ = authorize(browser, app, "code", "query.jwt")
    refused, _, _ = authorize(browser, app, "code", "form_post.jwt")
    assert "code" in verify(allowed, app)[1].params
    assert "code" in verify(resolved, app)[1].params  # jwt resolves to query.jwt for code
    delivery, verified = verify(refused, app)
    assert delivery.mode == "form_post"
    assert verified.params["error"] == "invalid_request"


# Signing ---------------------------------------------------------------------------------

ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_every_asymmetric_algorithm(browser, make_app, authorize, verify, jwks, alg):
    # RFC 9864: Ed25519 is EdDSA with an Ed25519 key, signed by the EdDSA server key.
    key = generate_server_key("EdDSA" if alg == "Ed25519" else alg)
    if key.status == "next":  # RS256: DOT's OIDC key signed until now; activating waits, forced here
        key = activate_server_key(key.kid, force=True)
    app = make_app("code", jarm={"authorization_signed_response_alg": alg})
    response, _, _ = authorize(browser, app, "code", "jwt")
    _, verified = verify(response, app)
    assert verified.header == {"alg": alg, "kid": key.kid}
    published = [k for k in jwks()["keys"] if k["kid"] == key.kid]
    # The Ed25519 key signs under both names, so it is published without an alg to match.
    assert published[0].get("alg") == (None if key.alg == "EdDSA" else alg)
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(published[0])


@pytest.mark.django_db
@pytest.mark.parametrize(("alg", "length"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_with_unhashed_client_secret(browser, make_app, authorize, verify, alg, length):
    app = make_app("code", hash_client_secret=False, client_secret="s" * length)
    from django_jarm.models import ClientSettings

    ClientSettings.objects.create(application=app, authorization_signed_response_alg=alg)
    with override_settings(JARM={"SIGNING_ALGS_SUPPORTED": [alg]}):
        response, _, _ = authorize(browser, app, "code", "jwt")
    _, verified = verify(response, app)
    assert verified.header["alg"] == alg
    assert verified.header["kid"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("app_kwargs", "settings"),
    [
        ({"hash_client_secret": True}, {"SIGNING_ALGS_SUPPORTED": ["HS256"]}),  # secret hashed at rest
        ({"hash_client_secret": False, "client_secret": "short"}, {"SIGNING_ALGS_SUPPORTED": ["HS256"]}),
        ({"hash_client_secret": False}, {}),  # HS256 not enabled on the server
    ],
    ids=["hashed-secret", "short-secret", "hs-disabled"],
)
@pytest.mark.parametrize(("mode", "plain"), [("jwt", "query"), ("form_post.jwt", "form_post")])
def test_unusable_hmac_key_is_plain_server_error(browser, make_app, authorize, app_kwargs, settings, mode, plain):
    app = make_app("code", **app_kwargs)
    from django_jarm.models import ClientSettings

    ClientSettings.objects.create(application=app, authorization_signed_response_alg="HS256")
    with override_settings(JARM=settings):
        response, _, _ = authorize(browser, app, "code", mode)
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == plain
    assert dict(delivery.params) == {
        "error": "server_error",
        "error_description": "The authorization server cannot produce a signed response for this client.",
        "state": "af0ifjsldkj",
    }


@pytest.mark.django_db
def test_no_key_for_the_algorithm_is_plain_server_error_and_no_code_is_issued(browser, make_app, authorize):
    from oauth2_provider.models import get_grant_model

    app = make_app("code", jarm={"authorization_signed_response_alg": "ES256"})
    response, _, _ = authorize(browser, app, "code", "jwt")
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == "query"
    assert dict(delivery.params)["error"] == "server_error"
    assert not get_grant_model().objects.exists()


@pytest.mark.django_db
def test_server_default_algorithm(browser, make_app, authorize, verify):
    generate_server_key("ES256")
    app = make_app("code")
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "ES256"}):
        response, _, _ = authorize(browser, app, "code", "jwt")
    assert verify(response, app)[1].header["alg"] == "ES256"


# Response details ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", [302, 303])
def test_redirect_status_and_no_store(browser, make_app, authorize, status):
    app = make_app("code")
    with override_settings(JARM={"REDIRECT_STATUS": status}):
        response, _, _ = authorize(browser, app, "code", "jwt")
    assert response.status_code == status
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.parametrize("lifetime", [10, 600])
def test_response_lifetime_and_iat(browser, make_app, authorize, verify, lifetime):
    app = make_app("code")
    with override_settings(JARM={"RESPONSE_LIFETIME": lifetime, "INCLUDE_IAT": lifetime == 10}):
        response, _, _ = authorize(browser, app, "code", "jwt")
    claims = verify(response, app)[1].claims
    if lifetime == 10:
        assert claims["exp"] - claims["iat"] == 10
    else:
        assert "iat" not in claims


@pytest.mark.django_db
def test_form_post_page(browser, make_app, authorize):
    app = make_app("code")
    state = '"><script>alert(1)</script>&amp;'
    response, _, _ = authorize(browser, app, "code", "form_post", state=state)
    html = response.content.decode()
    action, method, inputs, scripts = rp.parse_form_post(html)
    assert (action, method) == (REDIRECT_URI, "post")
    assert dict(inputs)["state"] == state  # the browser posts back exactly what was sent
    assert "<script>alert(1)" not in html
    assert response["Cache-Control"] == "no-cache, no-store"
    assert response["Pragma"] == "no-cache"
    csp = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    nonce = scripts[0]["nonce"]
    assert csp == {
        "default-src": "'none'",
        "script-src": f"'nonce-{nonce}'",
        "style-src": f"'nonce-{nonce}'",
        "form-action": "https://rp.example",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
    }
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Frame-Options"] == "DENY"
    assert "onload" not in html
    assert "onclick" not in html
    assert "<noscript>" in html
    assert '<button type="submit">' in html


@pytest.mark.django_db
def test_form_post_pages_use_fresh_nonces(browser, make_app, authorize):
    app = make_app("code")
    first, _, _ = authorize(browser, app, "code", "form_post.jwt")
    second, _, _ = authorize(browser, app, "code", "form_post.jwt")
    assert (
        rp.parse_form_post(first.content.decode())[3][0]["nonce"]
        != rp.parse_form_post(second.content.decode())[3][0]["nonce"]
    )


@pytest.mark.django_db
def test_custom_scheme_redirect_uri(browser, make_app, authorize, verify):
    redirect_uri = "com.example.app:/oauth/cb"
    app = make_app("code", redirect_uris=redirect_uri)
    response, _, _ = authorize(browser, app, "code", "form_post.jwt", redirect_uri=redirect_uri)
    assert "form-action com.example.app:" in response["Content-Security-Policy"]
    verify(response, app, redirect_uri=redirect_uri)


@pytest.mark.django_db
def test_dot_never_gets_the_response_url_to_log(browser, make_app, authorize, verify, caplog):
    import logging

    app = make_app("code", skip_authorization=False)
    page, _, _ = authorize(browser, app, "code", "jwt")
    with caplog.at_level(logging.DEBUG, logger="oauth2_provider"):
        response = browser.post("/o/authorize/", {**_form_data(page), "allow": "Authorize"})
    code = verify(response, app)[1].claims["code"]
    dot_lines = [record.getMessage() for record in caplog.records if record.name == "oauth2_provider"]
    assert any("Success url" in line for line in dot_lines)
    assert not any(code in line for line in dot_lines)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_id": "a\x00b"}, "NUL"),
        ({"state": "st\x00"}, "NUL"),
        ({"nonce": "n" * 256}, "nonce is longer than 255"),
        ({"code_challenge": "c" * 129}, "code_challenge is longer than 128"),
    ],
)
def test_parameters_the_database_cannot_store_are_refused(browser, make_app, authorize, change, message):
    """PostgreSQL refuses NUL bytes and over-long values: an error page on every database, never a 500."""
    app = make_app("code id_token")
    _, _, query = authorize(Client(), app, "code id_token", "jwt")
    query = [(k, change.get(k, v)) for k, v in query]
    response = browser.get("/o/authorize/", query)
    assert response.status_code == 400
    assert "Location" not in response
    assert message in response.content.decode()
