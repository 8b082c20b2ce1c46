"""The core request path (django_jarm.authorization): plan once, deliver; hooks shared by the
endpoint and the admin preview; late failures never leak the grant."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import RequestFactory, override_settings
from oauth2_provider.models import get_access_token_model, get_grant_model

from django_jarm import authorization, tokens
from django_jarm._compat import dot_has_par
from django_jarm.authorization import AuthorizationRequest, ResponsePlanner, plan
from django_jarm.exceptions import SERVER_ERROR, Refusal, ResponseBuildError
from django_jarm.keys import generate_server_key
from tests import rp
from tests.conftest import REDIRECT_URI

pytestmark = pytest.mark.django_db


class ES256ForEveryone(ResponsePlanner):
    """A deployment's planner: one hook changed."""

    def get_signing_alg(self, application: Any, settings: Any) -> str:
        return "ES256"


PLANNER = {"RESPONSE_PLANNER": "tests.test_planner.ES256ForEveryone"}


def request_for(app: Any, **fields: Any) -> AuthorizationRequest:
    values: dict[str, Any] = {
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "state": "st",
        "response_modes": ("jwt",),
        **fields,
    }
    return AuthorizationRequest(**values)


def test_plan_decides_mode_keys_and_issuer_before_any_code(make_app):
    key = generate_server_key("PS256")
    app = make_app("code", jarm={"authorization_signed_response_alg": "PS256"})
    decided = plan(RequestFactory().get("/o/authorize/"), app, request_for(app))
    assert (decided.mode.name, decided.refusal, decided.problem) == ("query.jwt", None, "")
    assert (decided.signing_key.alg, decided.signing_key.kid) == ("PS256", key.kid)
    assert decided.encryption_key is None
    assert decided.issuer == "http://testserver/o"


def test_plan_refuses_by_policy_in_a_jwt(make_app):
    generate_server_key("RS256")
    app = make_app("code", jarm={"require_jarm": True})
    decided = plan(RequestFactory().get("/"), app, request_for(app, response_modes=("query",)))
    assert decided.mode.name == "query.jwt"
    assert decided.refusal == Refusal(
        "invalid_request", "This client must use a JWT response mode (response_mode=jwt)."
    )
    assert decided.signing_key is not None  # the refusal itself is signed


def test_plan_without_a_key_answers_server_error_in_the_plain_twin(make_app):
    app = make_app("code", jarm={"authorization_signed_response_alg": "ES512"})
    decided = plan(RequestFactory().get("/"), app, request_for(app, response_modes=("fragment.jwt",)))
    assert (decided.mode.name, decided.refusal) == ("fragment", SERVER_ERROR)
    assert decided.problem == "No active server key for ES512; run `manage.py jarm_keys generate --alg ES512`."


@pytest.mark.parametrize(
    ("extra", "error", "description"),
    [
        (
            {"request": "eyJhbGciOiJub25lIn0.e30."},
            "request_not_supported",
            "Request objects (the request parameter) are not supported.",
        ),
        (
            {"request_uri": "https://rp.example/request.jwt"},
            "request_uri_not_supported",
            "request_uri is supported only for pushed requests (PAR).",
        ),
    ],
)
def test_request_objects_are_refused_in_the_verified_outer_mode(
    browser, make_app, authorize, verify, extra, error, description
):
    generate_server_key("RS256")
    app = make_app("code")
    if "request_uri" in extra and dot_has_par():
        # A DOT with PAR reads every request_uri as a pushed request: an unknown one is its error page.
        response, _, _ = authorize(browser, app, "code", "fragment.jwt", extra=extra)
        assert response.status_code == 400
        assert "Location" not in response
        return
    # The request object asks for nothing we could honour: the outer response_mode decides.
    response, _, _ = authorize(browser, app, "code", "fragment.jwt", extra=extra)
    delivery, verified = verify(response, app)
    assert delivery.mode == "fragment"
    assert verified.params == {
        "iss": "http://testserver/o",
        "error": error,
        "error_description": description,
        "state": "af0ifjsldkj",
    }


def test_a_pushed_style_request_uri_where_par_is_not_served_is_refused(browser, make_app, authorize, verify):
    from oauth2_provider.settings import oauth2_settings

    from django_jarm.par import REQUEST_URI_PREFIX

    generate_server_key("RS256")
    app = make_app("code")
    extra = {"request_uri": REQUEST_URI_PREFIX + "made-up"}
    with override_settings(OAUTH2_PROVIDER={**django_settings.OAUTH2_PROVIDER, "PAR_ENABLED": False}):
        oauth2_settings.reload()
        try:
            response, _, _ = authorize(browser, app, "code", "fragment.jwt", extra=extra)
        finally:
            oauth2_settings.reload()
    if response.status_code == 400:  # a DOT that reads every request_uri as a pushed request
        assert dot_has_par()
        assert "Location" not in response
        return
    _, verified = verify(response, app)
    assert verified.params["error"] == "request_uri_not_supported"


def test_request_objects_without_a_jwt_mode_are_refused_in_the_clear(browser, make_app, authorize):
    app = make_app("code")
    response, _, _ = authorize(browser, app, "code", extra={"request": "x.y.z"})
    assert dict(rp.delivery_of(response, REDIRECT_URI).params)["error"] == "request_not_supported"


def test_a_planner_hook_acts_on_the_endpoint_and_on_the_admin_preview(browser, admin_client, make_app, authorize):
    generate_server_key("PS256")
    es256 = generate_server_key("ES256")
    app = make_app("code", jarm={"authorization_signed_response_alg": "PS256"})
    with override_settings(JARM=PLANNER):
        response, _, _ = authorize(browser, app, "code", "jwt")
        token = rp.jwt_of(rp.delivery_of(response, REDIRECT_URI))
        preview = html.unescape(
            admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").content.decode()
        )
    assert rp.verify_response(
        token,
        jwks=browser.get("/o/.well-known/jwks.json").json(),
        issuer="http://testserver/o",
        client_id=app.client_id,
    ).header == {"alg": "ES256", "kid": es256.kid}
    assert f"<code>{es256.kid}</code>" in preview
    assert '"alg": "ES256"' in preview


# Late failures: after DOT issued the code, before the JWT exists ---------------------------------


def _fail(*args: Any, **kwargs: Any) -> str:
    raise ResponseBuildError("Signing failed: simulated.")


@pytest.mark.parametrize("step", ["sign", "encrypt"])
@pytest.mark.parametrize("mode", ["query.jwt", "fragment.jwt", "form_post.jwt"])
def test_a_late_failure_answers_server_error_and_the_code_cannot_be_redeemed(
    browser, make_app, authorize, monkeypatch, step, mode
):
    from joserfc.jwk import RSAKey

    generate_server_key("RS256")
    recipient = RSAKey.generate_key(2048, parameters={"use": "enc"})
    app = make_app(
        "code id_token",
        jarm={
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "jwks": {"keys": [recipient.as_dict(private=False)]},
        },
    )
    monkeypatch.setattr(tokens, step, _fail)
    response, _, _ = authorize(browser, app, "code id_token", mode)
    delivery = rp.delivery_of(response, REDIRECT_URI)
    params = dict(delivery.params)
    assert params == {
        "error": "server_error",
        "error_description": SERVER_ERROR.description,
        "state": "af0ifjsldkj",
    }
    assert delivery.mode == {"query.jwt": "query", "fragment.jwt": "fragment", "form_post.jwt": "form_post"}[mode]
    # DOT issued a code (and an ID token) before signing failed: the code is revoked.
    assert get_grant_model().objects.count() == 0
    assert get_access_token_model().objects.count() == 0


def test_a_late_failure_for_tokens_revokes_the_access_token(browser, make_app, authorize, monkeypatch):
    generate_server_key("RS256")
    app = make_app("code token")
    monkeypatch.setattr(tokens, "sign", _fail)
    response, _, _ = authorize(browser, app, "code token", "fragment.jwt")
    assert dict(rp.delivery_of(response, REDIRECT_URI).params)["error"] == "server_error"
    assert get_access_token_model().objects.count() == 0
    assert get_grant_model().objects.count() == 0


def test_response_parameters_drop_dots_iss_and_keep_the_redirect_uris_own_query():
    url = "https://rp.example/cb?own=1&code=abc&state=s&iss=https%3A%2F%2Fas"
    assert authorization.response_parameters(url, "https://rp.example/cb?own=1") == [("code", "abc"), ("state", "s")]
    assert ("iss", "https://as") in authorization.response_parameters(url, "https://rp.example/cb?own=1", keep_iss=True)


@pytest.mark.django_db
def test_the_issuer_is_remembered_only_for_allowed_hosts():
    from django.core.exceptions import DisallowedHost

    factory = RequestFactory()
    assert authorization.get_issuer(factory.get("/o/authorize/", HTTP_HOST="localhost")) == "http://localhost/o"
    assert authorization.get_issuer(factory.get("/o/authorize/", HTTP_HOST="127.0.0.1")) == "http://127.0.0.1/o"
    for host in ("evil.example", "localhost.evil.example", "localhost:80@evil.example"):
        with pytest.raises(DisallowedHost):
            authorization.get_issuer(factory.get("/o/authorize/", HTTP_HOST=host))
    # Asked again, still refused: a refused host is never remembered.
    with pytest.raises(DisallowedHost):
        authorization.get_issuer(factory.get("/o/authorize/", HTTP_HOST="evil.example"))
    assert authorization.get_issuer(factory.get("/o/authorize/", secure=True, HTTP_HOST="localhost")) == (
        "https://localhost/o"
    )


@pytest.mark.django_db
def test_the_remembered_issuer_follows_a_forwarded_host():
    from django.core.exceptions import DisallowedHost

    factory = RequestFactory()
    with override_settings(USE_X_FORWARDED_HOST=True):
        assert authorization.get_issuer(factory.get("/o/authorize/", HTTP_HOST="localhost")) == "http://localhost/o"
        forwarded = factory.get("/o/authorize/", HTTP_HOST="localhost", HTTP_X_FORWARDED_HOST="127.0.0.1")
        assert authorization.get_issuer(forwarded) == "http://127.0.0.1/o"
        with pytest.raises(DisallowedHost):
            authorization.get_issuer(
                factory.get("/o/authorize/", HTTP_HOST="localhost", HTTP_X_FORWARDED_HOST="evil.example")
            )


def test_the_issuer_is_remembered_per_host_and_scheme(browser, make_app, jwks):
    """Each host the server answers for signs its own issuer, even from one warm snapshot."""
    generate_server_key("RS256")
    app = make_app("code")
    for host, secure, issuer in (
        ("testserver", False, "http://testserver/o"),
        ("localhost", False, "http://localhost/o"),
        ("localhost", True, "https://localhost/o"),
    ):
        _, challenge = rp.pkce_pair()
        query = {
            "client_id": app.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "response_mode": "query.jwt",
        }
        response = browser.get("/o/authorize/", query, HTTP_HOST=host, secure=secure)
        token = rp.jwt_of(rp.delivery_of(response, REDIRECT_URI))
        verified = rp.verify_response(token, jwks=jwks(), issuer=issuer, client_id=app.client_id)
        assert verified.claims["iss"] == issuer
