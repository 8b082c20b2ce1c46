from __future__ import annotations

import pytest
from django.core.exceptions import DisallowedRedirect
from django.test import RequestFactory, override_settings

from django_jarm.exceptions import Refusal
from django_jarm.response_modes import (
    RESPONSE_MODES,
    ClientPolicy,
    default_mode_name,
    form_action_source,
    jwt_mode_name,
    resolve_response_mode,
)
from django_jarm.tokens import CompactJWT

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


QUERY_JWT_TOKENS = "response_mode=query.jwt cannot carry tokens unless the response is encrypted."
MUST_USE_JWT = "This client must use a JWT response mode (response_mode=jwt)."
NOT_ALLOWED = "This response_mode is not allowed for this client."


@pytest.mark.parametrize(
    ("requested", "response_type", "policy", "mode", "description"),
    [
        (["query.jwt"], "code", OPEN, "query.jwt", None),
        (["form_post"], "token", OPEN, "form_post", None),
        (["bogus"], "code", OPEN, "query", "Unsupported response_mode."),
        (["bogus"], "code id_token", OPEN, "fragment", "Unsupported response_mode."),
        (["jwt", "jwt"], "code", OPEN, "query", "response_mode must not be repeated."),
        (["query"], "token", OPEN, "fragment", "response_mode=query cannot carry tokens."),
        (["query.jwt"], "id_token", OPEN, "fragment.jwt", QUERY_JWT_TOKENS),
        (["query.jwt"], "id_token", ClientPolicy(encrypted=True), "query.jwt", None),
        (["query"], "code", ClientPolicy(require_jarm=True), "query.jwt", MUST_USE_JWT),
        (["form_post"], "code", ClientPolicy(require_jarm=True), "form_post.jwt", MUST_USE_JWT),
        ([], "code token", ClientPolicy(require_jarm=True), "fragment.jwt", MUST_USE_JWT),
        (
            ["fragment.jwt"],
            "code",
            ClientPolicy(allowed_modes=["jwt"]),
            "fragment.jwt",
            NOT_ALLOWED,
        ),
        (["query.jwt"], "code", ClientPolicy(allowed_modes=["jwt"]), "query.jwt", None),
        (["jwt"], "code", ClientPolicy(allowed_modes=["query.jwt"]), "query.jwt", None),
        (["fragment"], "code", ClientPolicy(allowed_modes=["jwt"]), "fragment.jwt", NOT_ALLOWED),
    ],
)
def test_policy(requested, response_type, policy, mode, description):
    decision = resolve_response_mode(requested, response_type, policy)
    assert decision.mode.name == mode
    if description is None:
        assert decision.refusal is None
    else:
        assert decision.refusal == Refusal("invalid_request", description)


def test_server_without_plain_default_requires_a_jwt_mode():
    with override_settings(JARM={"RESPONSE_MODES_SUPPORTED": ["jwt", "query.jwt"]}):
        decision = resolve_response_mode([], "code", OPEN)
    assert decision.mode.name == "query.jwt"
    assert decision.refusal == Refusal("invalid_request", "This server requires response_mode=jwt.")


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
        ("HTTPS://RP.example:8443/cb", "https://RP.example:8443"),
        ("https://[2001:db8::1]:8443/cb", "https://[2001:db8::1]:8443"),
        ("https://a@b@rp.example/cb", "https://rp.example"),
        # Nothing a CSP source could express: the scheme alone, or no form target at all.
        ("https://rp.example;script-src/cb", "https:"),
        ("1app:/cb", "'none'"),
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


def test_a_project_form_post_template_is_rendered_with_the_request():
    """A project's own django_jarm/form_post.html sees the request (its context processors run)."""
    template = "<form method=post action='{{ action }}' data-host='{{ request.get_host }}'></form>"
    templates = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [("django.template.loaders.locmem.Loader", {"django_jarm/form_post.html": template})],
                "context_processors": ["django.template.context_processors.request"],
            },
        }
    ]
    with override_settings(TEMPLATES=templates):
        response = RESPONSE_MODES["form_post.jwt"].render(
            RequestFactory().get("/o/authorize/", HTTP_HOST="localhost"),
            "https://rp.example/cb",
            [("response", "a.b.c")],
            allowed_schemes=["https"],
        )
    assert response.content.decode() == "<form method=post action='https://rp.example/cb' data-host='localhost'></form>"


@pytest.mark.parametrize(
    "redirect_uri", ["https://rp.example/cb#old", "https://rp.example/cb#a#b", "https://rp.example/cb"]
)
def test_fragment_location_replaces_any_fragment_of_the_redirect_uri(redirect_uri):
    # RFC 6749 3.1.2: a redirection endpoint has no fragment; the response parameters are the fragment.
    location = RESPONSE_MODES["fragment.jwt"].location(redirect_uri, [("response", "a.b.c")])
    assert location == "https://rp.example/cb#response=a.b.c"


# A response JWT built by tokens is appended as it is --------------------------------------

REDIRECT_URIS = [
    "https://rp.example/cb",
    "https://rp.example/cb?x=y",
    "https://rp.example/cb?",
    "https://rp.example/cb#old",
    "https://rp.example/ca\u0300llback?q=\u00e9t\u00e9",  # an IRI: escaped by DOT's redirect as always
    "com.example.app:/cb",
    "http://127.0.0.1:8000/callback/",
    "https://rp.example/a b?c=d e",
]


@pytest.mark.parametrize("mode", ["query.jwt", "fragment.jwt"])
@pytest.mark.parametrize("redirect_uri", REDIRECT_URIS)
def test_a_built_token_redirects_exactly_as_urlencoded(mode, redirect_uri):
    token = "eyJhbGciOiJFUzI1NiJ9.eyJjb2RlIjoiYyJ9.sig-_0123456789" * 20
    request = RequestFactory().get("/")
    schemes = ["https", "http", "com.example.app"]
    render = RESPONSE_MODES[mode].render
    fast = render(request, redirect_uri, [("response", CompactJWT(token))], allowed_schemes=schemes)
    general = render(request, redirect_uri, [("response", token)], allowed_schemes=schemes)
    assert fast["Location"] == general["Location"]
    assert fast["Location"].endswith("response=" + token)
    assert fast.status_code == general.status_code == 302
    assert sorted(fast.headers.items()) == sorted(general.headers.items())


@pytest.mark.parametrize(
    "redirect_uri", ["javascript:alert(1)//", "data:text/html,x", "rp.example/cb", "ftp://rp.example/"]
)
def test_a_built_token_is_never_redirected_to_a_scheme_not_allowed(redirect_uri):
    with pytest.raises(DisallowedRedirect):
        RESPONSE_MODES["query.jwt"].render(
            RequestFactory().get("/"), redirect_uri, [("response", CompactJWT("a.b.c"))], allowed_schemes=["https"]
        )


def test_any_other_string_is_urlencoded():
    # Only tokens' own type skips the escaping: a planner's string is encoded as always.
    response = RESPONSE_MODES["query.jwt"].render(
        RequestFactory().get("/"), "https://rp.example/cb", [("response", "a.b&c=d#e")], allowed_schemes=["https"]
    )
    assert response["Location"] == "https://rp.example/cb?response=a.b%26c%3Dd%23e"
