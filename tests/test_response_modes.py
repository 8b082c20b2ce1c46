from __future__ import annotations

import pytest
from django.core.exceptions import DisallowedRedirect
from django.test import RequestFactory, override_settings

from django_jarm.exceptions import ResponseModeNotAllowed, UnsupportedResponseMode
from django_jarm.response_modes import (
    RESPONSE_MODES,
    ClientPolicy,
    default_mode_name,
    form_action_source,
    jwt_mode_name,
    resolve_response_mode,
)

OPEN = ClientPolicy()


@pytest.mark.parametrize(
    ("response_type", "jwt", "default"),
    [
        ("code", "query.jwt", "query"),
        ("none", "query.jwt", "query"),
        ("token", "fragment.jwt", "fragment"),
        ("id_token", "fragment.jwt", "fragment"),
        ("id_token token", "fragment.jwt", "fragment"),
        ("code id_token", "fragment.jwt", "fragment"),
        ("code token", "fragment.jwt", "fragment"),
        ("code id_token token", "fragment.jwt", "fragment"),
    ],
)
def test_jwt_resolution(response_type, jwt, default):
    # JARM 2.3.4 and OAuth 2.0 Multiple Response Types 2.1
    assert jwt_mode_name(response_type) == jwt
    assert default_mode_name(response_type) == default
    assert resolve_response_mode(["jwt"], response_type, OPEN).mode.name == jwt
    assert resolve_response_mode([], response_type, OPEN).mode.name == default


@pytest.mark.parametrize(
    ("requested", "response_type", "policy", "mode", "error"),
    [
        (["query.jwt"], "code", OPEN, "query.jwt", None),
        (["form_post"], "token", OPEN, "form_post", None),
        (["bogus"], "code", OPEN, "query", UnsupportedResponseMode),
        (["bogus"], "code id_token", OPEN, "fragment", UnsupportedResponseMode),
        (["jwt", "jwt"], "code", OPEN, "query", UnsupportedResponseMode),
        (["query"], "token", OPEN, "fragment", ResponseModeNotAllowed),
        (["query.jwt"], "id_token", OPEN, "fragment.jwt", ResponseModeNotAllowed),
        (["query.jwt"], "id_token", ClientPolicy(encrypted=True), "query.jwt", None),
        (["query"], "code", ClientPolicy(require_jarm=True), "query.jwt", ResponseModeNotAllowed),
        (["form_post"], "code", ClientPolicy(require_jarm=True), "form_post.jwt", ResponseModeNotAllowed),
        ([], "code token", ClientPolicy(require_jarm=True), "fragment.jwt", ResponseModeNotAllowed),
        (
            ["fragment.jwt"],
            "code",
            ClientPolicy(allowed_modes=["jwt"]),
            "fragment.jwt",
            ResponseModeNotAllowed,
        ),
        (["query.jwt"], "code", ClientPolicy(allowed_modes=["jwt"]), "query.jwt", None),
        (["jwt"], "code", ClientPolicy(allowed_modes=["query.jwt"]), "query.jwt", None),
        (["fragment"], "code", ClientPolicy(allowed_modes=["jwt"]), "fragment.jwt", ResponseModeNotAllowed),
    ],
)
def test_policy(requested, response_type, policy, mode, error):
    decision = resolve_response_mode(requested, response_type, policy)
    assert decision.mode.name == mode
    if error is None:
        assert decision.error is None
    else:
        assert type(decision.error) is error
        assert decision.error.error == "invalid_request"


def test_server_without_plain_default_requires_a_jwt_mode():
    with override_settings(JARM={"RESPONSE_MODES_SUPPORTED": ["jwt", "query.jwt"]}):
        decision = resolve_response_mode([], "code", OPEN)
    assert decision.mode.name == "query.jwt"
    assert isinstance(decision.error, ResponseModeNotAllowed)


@pytest.mark.parametrize(
    ("redirect_uri", "expected"),
    [
        ("https://rp.example/cb", "https://rp.example/cb?a=1&b=2"),
        ("https://rp.example/cb?x=y", "https://rp.example/cb?x=y&a=1&b=2"),
        ("https://rp.example/cb?", "https://rp.example/cb?a=1&b=2"),
    ],
)
def test_query_location(redirect_uri, expected):
    assert RESPONSE_MODES["query"].location(redirect_uri, [("a", "1"), ("b", "2")]) == expected


def test_fragment_location_encodes():
    location = RESPONSE_MODES["fragment.jwt"].location("https://rp.example/cb?x=y", [("response", "a.b&c")])
    assert location == "https://rp.example/cb?x=y#response=a.b%26c"


@pytest.mark.parametrize(
    ("redirect_uri", "source"),
    [
        ("https://rp.example/cb?x=1", "https://rp.example"),
        ("http://127.0.0.1:8000/callback/", "http://127.0.0.1:8000"),
        ("https://user:pw@rp.example/cb", "https://rp.example"),
        ("com.example.app:/cb", "com.example.app:"),
    ],
)
def test_form_action_source(redirect_uri, source):
    assert form_action_source(redirect_uri) == source


def test_form_post_refuses_a_scheme_not_allowed():
    request = RequestFactory().get("/")
    with pytest.raises(DisallowedRedirect):
        RESPONSE_MODES["form_post.jwt"].render(
            request, "javascript:alert(1)", [("response", "x")], allowed_schemes=["https"]
        )
