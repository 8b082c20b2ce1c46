"""Pushed authorization requests (RFC 9126) through DOT's PAR endpoint, answered in JARM modes.

Runs only where the installed django-oauth-toolkit has PAR (its main branch, after 3.4.1):
``DOT_MAIN_PATH=/path/to/checkout tox -e dotmain``. Every JWT is verified with joserfc
(tests/rp.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.conf import settings
from django.test import Client, RequestFactory, override_settings
from django.urls import resolve

from django_jarm import par
from django_jarm._compat import dot_has_par
from django_jarm.keys import generate_server_key
from django_jarm.views import JARMPushedAuthorizationRequestMixin
from tests import rp
from tests.conftest import ISSUER, REDIRECT_URI, form_encoded, push_request

pytestmark = [
    pytest.mark.skipif(
        not dot_has_par(),
        reason="the installed django-oauth-toolkit has no pushed authorization requests (RFC 9126); "
        "run against DOT's main branch with DOT_MAIN_PATH=/path/to/checkout tox -e dotmain",
    ),
    pytest.mark.django_db,
]

STATE = "af0ifjsldkj"
PAR_ENDPOINT = "http://testserver/o/par/"
FAPI2 = {"PROFILE": "fapi2-message-signing"}


def dot_settings(**changes: Any) -> dict[str, Any]:
    return {**settings.OAUTH2_PROVIDER, **changes}


def form_data(page: Any) -> dict[str, str]:
    """The consent form's fields as the page rendered them (without the allow button)."""
    form = page.context["form"]
    return {name: form[name].value() or "" for name in form.fields if name != "allow"}


def post_consent(browser: Client, page: Any, *, allow: bool = True, **changes: str) -> Any:
    """Submit the consent page to the URL it was served at, as the template's action-less form does."""
    data = {**form_data(page), **changes}
    if allow:
        data["allow"] = "Authorize"
    return browser.post(page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"], data)


# Pre-approved client: the pushed response_mode decides the delivery --------------------------


@pytest.mark.parametrize(
    ("mode", "delivered_in"),
    [("jwt", "query"), ("query.jwt", "query"), ("fragment.jwt", "fragment"), ("form_post.jwt", "form_post")],
)
def test_pushed_request_is_answered_in_its_jwt_mode(browser, make_app, authorize, verify, redeem, mode, delivered_in):
    app = make_app("code")
    response, verifier, query = authorize(browser, app, "code", mode, pushed=True)
    assert [name for name, _ in query] == ["client_id", "request_uri"]

    delivery, verified = verify(response, app)

    assert delivery.mode == delivered_in
    assert set(verified.claims) == {"iss", "aud", "exp", "iat", "code", "state"}
    assert verified.claims["state"] == STATE
    assert verified.claims["iss"] == ISSUER
    assert redeem(app, verified.claims["code"], verifier).status_code == 200


def test_pushed_hybrid_request_is_answered_in_the_fragment(browser, make_app, authorize, verify):
    app = make_app("code id_token")
    response, _, _ = authorize(browser, app, "code id_token", "jwt", pushed=True)
    delivery, verified = verify(response, app)
    assert delivery.mode == "fragment"
    assert {"code", "id_token", "state"} <= set(verified.claims)


def test_pushed_request_without_response_mode_keeps_the_plain_default(browser, make_app, authorize):
    app = make_app("code")
    response, _, _ = authorize(browser, app, "code", pushed=True)
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == "query"
    assert {name for name, _ in delivery.params} == {"code", "state"}


# Consent page: the URL carries only request_uri, the hidden field carries the mode -----------


@pytest.mark.parametrize(
    ("mode", "delivered_in"), [("query.jwt", "query"), ("fragment.jwt", "fragment"), ("form_post.jwt", "form_post")]
)
def test_consent_post_of_a_pushed_request_keeps_the_mode(
    browser, make_app, authorize, verify, redeem, mode, delivered_in
):
    app = make_app("code", skip_authorization=False)
    page, verifier, _ = authorize(browser, app, "code", mode, pushed=True)
    assert page.status_code == 200
    assert f'name="response_mode" value="{mode}"' in page.content.decode()
    assert [name for name, _ in parse_qsl(page.request["QUERY_STRING"])] == ["client_id", "request_uri"]

    delivery, verified = verify(post_consent(browser, page), app)

    assert delivery.mode == delivered_in
    assert verified.params == {"iss": ISSUER, "code": verified.claims["code"], "state": STATE}
    assert redeem(app, verified.claims["code"], verifier).status_code == 200


def test_consent_deny_of_a_pushed_request_is_wrapped(browser, make_app, authorize, verify):
    app = make_app("code", skip_authorization=False)
    page, _, _ = authorize(browser, app, "code", "form_post.jwt", pushed=True)
    delivery, verified = verify(post_consent(browser, page, allow=False), app)
    assert delivery.mode == "form_post"
    assert verified.params == {"iss": ISSUER, "error": "access_denied", "state": STATE}


def test_response_mode_added_to_the_url_of_a_pushed_consent_post_is_ignored(browser, make_app, authorize, verify):
    # RFC 9126 4: the pushed request is authoritative, as DOT treats the GET.
    app = make_app("code", skip_authorization=False)
    page, _, _ = authorize(browser, app, "code", "query.jwt", pushed=True)
    url = page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"] + "&" + urlencode({"response_mode": "query"})
    response = browser.post(url, {**form_data(page), "allow": "Authorize"})
    delivery, verified = verify(response, app)
    assert delivery.mode == "query"
    assert set(verified.params) == {"iss", "code", "state"}


def test_tampered_mode_on_a_pushed_consent_post_is_revalidated(browser, make_app, authorize, verify):
    app = make_app("code", skip_authorization=False, jarm={"require_jarm": True})
    page, _, _ = authorize(browser, app, "code", "query.jwt", pushed=True)
    _, verified = verify(post_consent(browser, page, response_mode="query"), app)
    assert verified.params["error"] == "invalid_request"
    assert "code" not in verified.params


def test_pushed_consent_post_without_the_mode_field_gets_no_mode_from_the_url(browser, make_app, authorize, verify):
    app = make_app("code", skip_authorization=False, jarm={"require_jarm": True})
    page, _, _ = authorize(browser, app, "code", "query.jwt", pushed=True)
    data = {name: value for name, value in form_data(page).items() if name != "response_mode"}
    url = page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"] + "&response_mode=query.jwt"
    response = browser.post(url, {**data, "allow": "Authorize"})
    # No mode asked: the client's policy (JARM required) refuses, inside a JWT.
    _, verified = verify(response, app)
    assert verified.params["error"] == "invalid_request"
    assert "code" not in verified.params


# Errors and the mode policy ---------------------------------------------------------------


def test_plain_mode_pushed_by_a_client_that_requires_jarm_is_refused_in_a_jwt(browser, make_app, authorize, verify):
    app = make_app("code", jarm={"require_jarm": True})
    response, _, _ = authorize(browser, app, "code", "query", pushed=True)
    delivery, verified = verify(response, app)
    assert delivery.mode == "query"
    assert verified.params == {
        "iss": ISSUER,
        "error": "invalid_request",
        "error_description": "This client must use a JWT response mode (response_mode=jwt).",
        "state": STATE,
    }


def test_pushed_mode_outside_the_clients_allowed_modes_is_refused(browser, make_app, authorize, verify):
    app = make_app("code", jarm={"response_modes": ["form_post.jwt"]})
    response, _, _ = authorize(browser, app, "code", "query.jwt", pushed=True)
    _, verified = verify(response, app)
    assert verified.params["error"] == "invalid_request"
    assert "code" not in verified.params


def test_unknown_pushed_mode_is_answered_in_the_plain_default_mode(browser, make_app, authorize):
    app = make_app("code")
    response, _, _ = authorize(browser, app, "code", "query.jwt.bogus", pushed=True)
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == "query"
    assert dict(delivery.params) == {
        "error": "invalid_request",
        "error_description": "Unsupported response_mode.",
        "state": STATE,
    }


def test_a_used_request_uri_is_an_error_page_never_a_redirect(browser, make_app, authorize):
    app = make_app("code")
    first, _, query = authorize(browser, app, "code", "query.jwt", pushed=True)
    assert first.status_code == 302
    again = browser.get("/o/authorize/?" + urlencode(query))
    assert again.status_code == 400
    assert "Location" not in again


def test_login_redirect_keeps_the_request_uri_for_after_login(user, make_app, authorize, verify):
    app = make_app("code")
    anonymous = Client()
    response, _, query = authorize(anonymous, app, "code", "query.jwt", pushed=True)
    assert response.status_code == 302
    next_url = dict(parse_qsl(urlsplit(response["Location"]).query))["next"]
    assert dict(parse_qsl(urlsplit(next_url).query)) == dict(query)

    anonymous.force_login(user)
    _, verified = verify(anonymous.get(next_url), app)
    assert set(verified.params) == {"iss", "code", "state"}


@pytest.mark.xfail(
    strict=True,
    reason="DOT reads prompt before it resolves the request_uri: an anonymous pushed prompt=none "
    "request goes to the login page instead of answering login_required",
)
def test_pushed_prompt_none_of_an_anonymous_user_is_login_required(make_app, authorize, verify):
    app = make_app("code")
    response, _, _ = authorize(Client(), app, "code", "query.jwt", extra={"prompt": "none"}, pushed=True)
    _, verified = verify(response, app)
    assert verified.params["error"] == "login_required"


# Discovery --------------------------------------------------------------------------------


@pytest.mark.parametrize("document", ["openid-configuration", "oauth-authorization-server"])
def test_discovery_names_the_par_endpoint(document):
    data = Client().get(f"/o/.well-known/{document}").json()
    assert data["pushed_authorization_request_endpoint"] == PAR_ENDPOINT
    assert "require_pushed_authorization_requests" not in data


@pytest.mark.parametrize("document", ["openid-configuration", "oauth-authorization-server"])
def test_discovery_says_nothing_of_par_when_dot_serves_none(document):
    with override_settings(OAUTH2_PROVIDER=dot_settings(PAR_ENABLED=False)):
        data = Client().get(f"/o/.well-known/{document}").json()
    assert "pushed_authorization_request_endpoint" not in data
    assert "require_pushed_authorization_requests" not in data


@pytest.mark.parametrize("document", ["openid-configuration", "oauth-authorization-server"])
@pytest.mark.parametrize(
    ("jarm", "dot"), [(FAPI2, {}), ({}, {"REQUIRE_PUSHED_AUTHORIZATION_REQUESTS": True})], ids=["fapi2", "dot-setting"]
)
def test_discovery_says_when_par_is_required(document, jarm, dot):
    with override_settings(JARM=jarm, OAUTH2_PROVIDER=dot_settings(**dot)):
        data = Client().get(f"/o/.well-known/{document}").json()
    assert data["pushed_authorization_request_endpoint"] == PAR_ENDPOINT
    assert data["require_pushed_authorization_requests"] is True


# FAPI 2.0: pushed requests required -------------------------------------------------------


@pytest.fixture
def fapi2_app(make_app):
    generate_server_key("ES256")
    return make_app("code", jarm={"authorization_signed_response_alg": "ES256"})


def test_fapi2_pushed_request_is_answered(browser, fapi2_app, authorize, verify):
    with override_settings(JARM=FAPI2):
        response, _, _ = authorize(browser, fapi2_app, "code", "jwt", pushed=True)
        delivery, verified = verify(response, fapi2_app)
    assert delivery.mode == "query"
    assert verified.header["alg"] == "ES256"
    assert set(verified.params) == {"iss", "code", "state"}


@pytest.mark.parametrize("logged_in", [True, False])
def test_fapi2_request_that_was_not_pushed_is_refused_on_an_error_page(user, fapi2_app, authorize, logged_in):
    client = Client()
    if logged_in:
        client.force_login(user)
    with override_settings(JARM=FAPI2):
        response, _, _ = authorize(client, fapi2_app, "code", "jwt")
    assert response.status_code == 400
    assert "Location" not in response
    assert "requires pushed authorization requests" in response.content.decode()


def test_fapi2_consent_post_without_a_pushed_request_uri_is_refused(browser, make_app, authorize):
    generate_server_key("ES256")
    app = make_app("code", skip_authorization=False, jarm={"authorization_signed_response_alg": "ES256"})
    page, _, _ = authorize(browser, app, "code", "jwt")  # no profile yet: the consent page is served
    with override_settings(JARM=FAPI2):
        response = browser.post("/o/authorize/", {**form_data(page), "allow": "Authorize"})
    assert response.status_code == 400
    assert "Location" not in response


def test_fapi2_consent_post_of_a_pushed_request_is_answered(browser, make_app, authorize, verify):
    generate_server_key("ES256")
    app = make_app("code", skip_authorization=False, jarm={"authorization_signed_response_alg": "ES256"})
    with override_settings(JARM=FAPI2):
        page, _, _ = authorize(browser, app, "code", "jwt", pushed=True)
        _, verified = verify(post_consent(browser, page), app)
    assert set(verified.params) == {"iss", "code", "state"}


def test_fapi2_does_not_require_par_when_dot_serves_none(browser, fapi2_app, authorize, verify):
    with override_settings(JARM=FAPI2, OAUTH2_PROVIDER=dot_settings(PAR_ENABLED=False)):
        assert not par.par_required()
        response, _, _ = authorize(browser, fapi2_app, "code", "jwt")
        _, verified = verify(response, fapi2_app)
    assert set(verified.params) == {"iss", "code", "state"}


# The helpers the authorization view uses ---------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc&client_id=c", True),
        ("request_uri=https%3A%2F%2Frp.example%2Frequest.jwt&client_id=c", False),
        (
            "request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aa"
            "&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ab",
            False,
        ),
        ("request=eyJhbGciOiJub25lIn0.e30.&client_id=c", False),
        ("client_id=c&response_type=code", False),
    ],
)
def test_is_pushed_request(query, expected):
    assert par.is_pushed_request(RequestFactory().get("/o/authorize/?" + query)) is expected
    assert par.is_pushed_request(RequestFactory().post("/o/authorize/?" + query, {"allow": "Authorize"})) is expected


def test_nothing_is_a_pushed_request_when_dot_serves_none():
    request = RequestFactory().get("/o/authorize/?request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc")
    with override_settings(OAUTH2_PROVIDER=dot_settings(PAR_ENABLED=False)):
        assert par.is_pushed_request(request) is False


def test_a_pushed_request_uri_is_recognised_as_issued(make_app):
    app = make_app("code")
    _, challenge = rp.pkce_pair()
    params = [("client_id", app.client_id), ("response_type", "code"), ("redirect_uri", REDIRECT_URI)]
    request_uri = push_request(app, [*params, ("code_challenge", challenge), ("code_challenge_method", "S256")])
    assert request_uri.startswith(par.REQUEST_URI_PREFIX)
    assert par.is_pushed_request(RequestFactory().get("/o/authorize/?" + urlencode({"request_uri": request_uri})))


# The PAR endpoint ------------------------------------------------------------------------


def test_django_jarm_urls_serve_the_par_endpoint():
    match = resolve("/o/par/")
    assert match.view_name == "oauth2_provider:pushed-authorization-request"
    assert issubclass(match.func.view_class, JARMPushedAuthorizationRequestMixin)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"state": "a\x00b"}, "a parameter contains a NUL character"),
        ({"response_mode": "query.jwt\x00"}, "a parameter contains a NUL character"),
        ({"nonce": "n" * 256}, "nonce is longer than 255 characters"),
    ],
    ids=["nul-state", "nul-mode", "long-nonce"],
)
def test_par_endpoint_refuses_what_the_database_cannot_store(make_app, changes, problem):
    app = make_app("code")
    _, challenge = rp.pkce_pair()
    body = {
        "client_id": app.client_id,
        "client_secret": app.plain_secret,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "read",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **changes,
    }
    response = Client().post("/o/par/", **form_encoded(body))
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": f"Invalid request: {problem}."}
    assert response["Cache-Control"] == "no-cache, no-store"
