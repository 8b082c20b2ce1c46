"""No request that asks for a JWT response mode ever gets response parameters in the clear.

The only answers allowed outside a JWT are the documented plain errors that carry nothing of
the grant: ``server_error`` when the server cannot sign for the client, and ``invalid_request``
for a repeated ``response_mode``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings
from oauth2_provider.models import get_access_token_model, get_grant_model

from tests import rp
from tests.conftest import REDIRECT_URI, RESPONSE_TYPES

JWT_MODES = ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"]
SCENARIOS = [
    "success",
    "consent-allow",
    "consent-deny",
    "invalid-scope",
    "missing-nonce",
    "anonymous-prompt-none",
    "client-requires-other-mode",
    "no-signing-key",
    "hashed-secret-hmac",
    "dot-iss-parameter",
    "repeated-mode",
]
ALLOWED_PLAIN = {"server_error", "invalid_request"}
GRANT_PARAMETERS = {"code", "access_token", "id_token", "token_type", "expires_in", "scope", "iss"}


def _answer(scenario: str, response_type: str, mode: str, make_app: Any, authorize: Any, browser: Client) -> Any:
    jarm: dict[str, Any] | None = None
    app_kwargs: dict[str, Any] = {"skip_authorization": not scenario.startswith("consent")}
    kwargs: dict[str, Any] = {}
    agent = browser
    modes: Any = mode
    if scenario == "invalid-scope":
        kwargs["scope"] = "openid admin"
    elif scenario == "missing-nonce":
        kwargs["nonce"] = None
    elif scenario == "anonymous-prompt-none":
        agent = Client()
        kwargs["extra"] = {"prompt": "none"}
    elif scenario == "client-requires-other-mode":
        jarm = {"response_modes": ["form_post.jwt" if mode != "form_post.jwt" else "fragment.jwt"]}
    elif scenario == "no-signing-key":
        jarm = {"authorization_signed_response_alg": "ES512"}
    elif scenario == "hashed-secret-hmac":
        jarm = {"authorization_signed_response_alg": "HS256"}
    elif scenario == "repeated-mode":
        modes = [mode, mode]
    app = make_app(response_type, jarm=jarm, **app_kwargs)
    dot = dict(settings.OAUTH2_PROVIDER, COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS=scenario == "dot-iss-parameter")
    with override_settings(OAUTH2_PROVIDER=dot, JARM={"SIGNING_ALGS_SUPPORTED": ["RS256", "ES512", "HS256"]}):
        response, _, _ = authorize(agent, app, response_type, modes, **kwargs)
        if scenario.startswith("consent") and response.status_code == 200 and "form" in (response.context or {}):
            form = response.context["form"]
            data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
            if scenario == "consent-allow":
                data["allow"] = "Authorize"
            response = browser.post("/o/authorize/", data)
    return response


@pytest.mark.django_db
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("response_type", RESPONSE_TYPES)
def test_jwt_modes_never_leak_parameters(browser, make_app, authorize, scenario, response_type):
    for mode in JWT_MODES:
        response = _answer(scenario, response_type, mode, make_app, authorize, browser)
        assert response.status_code in (200, 302, 303), (mode, response.status_code)
        delivery = rp.delivery_of(response, REDIRECT_URI)
        names = [name for name, _ in delivery.params]
        if names == ["response"]:
            continue
        params = dict(delivery.params)
        assert params.get("error") in ALLOWED_PLAIN, (scenario, mode, names)
        assert not GRANT_PARAMETERS & set(params), (scenario, mode, names)
        assert set(params) <= {"error", "error_description", "state"}
        if params["error"] == "invalid_request":
            assert scenario == "repeated-mode", (scenario, mode)
        else:
            assert scenario in ("no-signing-key", "hashed-secret-hmac"), (scenario, mode)


@pytest.mark.django_db
@pytest.mark.parametrize("scenario", ["no-signing-key", "hashed-secret-hmac", "repeated-mode"])
def test_plain_errors_issue_no_grant(browser, make_app, authorize, scenario):
    for response_type in RESPONSE_TYPES:
        _answer(scenario, response_type, "jwt", make_app, authorize, browser)
    assert not get_grant_model().objects.exists()
    assert not get_access_token_model().objects.exists()
