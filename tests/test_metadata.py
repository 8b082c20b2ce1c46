"""Discovery, RFC 8414 metadata and the JWK Set, fetched over HTTP."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_jarm.keys import generate_server_key
from django_jarm.models import ServerKey

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
DISCOVERY = "/o/.well-known/openid-configuration"
RFC8414 = "/o/.well-known/oauth-authorization-server"


@pytest.mark.django_db
@pytest.mark.parametrize("path", [DISCOVERY, RFC8414])
def test_jarm_members(path):
    generate_server_key("PS256")
    generate_server_key("ES256")
    response = Client().get(path)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    document = response.json()
    assert document["issuer"] == "http://testserver/o"
    assert document["authorization_endpoint"] == "http://testserver/o/authorize/"
    assert document["jwks_uri"] == "http://testserver/o/.well-known/jwks.json"
    assert document["response_modes_supported"] == [
        "query",
        "fragment",
        "form_post",
        "query.jwt",
        "fragment.jwt",
        "form_post.jwt",
        "jwt",
    ]
    # Only algorithms with a usable key: DOT's RSA key gives RS256.
    assert document["authorization_signing_alg_values_supported"] == ["RS256", "PS256", "ES256"]


@pytest.mark.django_db
def test_hmac_advertised_only_when_enabled():
    with override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["RS256", "HS256"]}):
        algs = Client().get(DISCOVERY).json()["authorization_signing_alg_values_supported"]
    assert algs == ["RS256", "HS256"]


@pytest.mark.django_db
def test_profile_shapes_signing_algs():
    for alg in ("RS256", "PS256", "ES256", "EdDSA"):
        generate_server_key(alg)
    with override_settings(JARM={"PROFILE": "fapi1-advanced"}):
        assert Client().get(DISCOVERY).json()["authorization_signing_alg_values_supported"] == [
            "PS256",
            "ES256",
        ]


@pytest.mark.django_db
def test_response_modes_follow_settings():
    with override_settings(JARM={"RESPONSE_MODES_SUPPORTED": ["jwt", "query.jwt", "bogus"]}):
        assert Client().get(DISCOVERY).json()["response_modes_supported"] == ["jwt", "query.jwt"]


@pytest.mark.django_db
def test_issuer_setting_is_used_everywhere():
    with override_settings(JARM={"ISSUER": "https://login.example.com/o"}):
        assert Client().get(DISCOVERY).json()["issuer"] == "https://login.example.com/o"
        assert Client().get(RFC8414).json()["issuer"] == "https://login.example.com/o"


@pytest.mark.django_db
def test_rfc8414_works_without_oidc():
    dot = dict(settings.OAUTH2_PROVIDER, OIDC_ENABLED=False)
    with override_settings(OAUTH2_PROVIDER=dot):
        document = Client().get(RFC8414).json()
        jwks = Client().get("/o/.well-known/jwks.json")
    assert document["jwks_uri"] == "http://testserver/o/.well-known/jwks.json"
    assert "jwt" in document["response_modes_supported"]
    assert jwks.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
def test_openid_discovery_is_404_without_oidc(debug):
    # DOT raises ImproperlyConfigured (a 500) here with DEBUG on; there is no OpenID Provider to describe.
    dot = dict(settings.OAUTH2_PROVIDER, OIDC_ENABLED=False)
    with override_settings(OAUTH2_PROVIDER=dot, DEBUG=debug):
        response = Client(raise_request_exception=False).get("/o/.well-known/openid-configuration")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "error_description": "OpenID Connect is not enabled on this server.",
    }


@pytest.mark.django_db
def test_jwks_holds_dot_and_jarm_keys_public_members_only():
    active = generate_server_key("ES256")
    upcoming = generate_server_key("ES256")
    retiring = generate_server_key("PS256")
    ServerKey.objects.filter(pk=retiring.pk).update(status=ServerKey.Status.RETIRING)
    retired = generate_server_key("EdDSA")
    ServerKey.objects.filter(pk=retired.pk).update(status=ServerKey.Status.RETIRED)
    from django_jarm.state import clear as clear_caches

    clear_caches()

    response = Client().get("/o/.well-known/jwks.json")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "max-age=3600" in response["Cache-Control"]
    keys = response.json()["keys"]
    kids = [key["kid"] for key in keys]
    assert kids[0] == _dot_kid()  # DOT's OIDC key keeps its thumbprint kid: ID tokens still verify
    assert set(kids[1:]) == {active.kid, upcoming.kid, retiring.kid}
    assert retired.kid not in kids
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["use"] == "sig"
    assert upcoming.status == ServerKey.Status.NEXT


def _dot_kid() -> str:
    from joserfc.jwk import RSAKey

    return RSAKey.import_key(settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]).thumbprint()


@pytest.mark.django_db
def test_dot_id_tokens_still_verify_against_the_jwks(browser, make_app, authorize, verify):
    from joserfc import jwt
    from joserfc.jwk import KeySet

    app = make_app("code id_token")
    response, _, _ = authorize(browser, app, "code id_token", "jwt")
    _, verified = verify(response, app)
    jwks = Client().get("/o/.well-known/jwks.json").json()
    id_token = jwt.decode(verified.claims["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert id_token.claims["iss"] == verified.claims["iss"]


@pytest.mark.django_db
def test_cached_documents_follow_key_changes(django_capture_on_commit_callbacks):
    first_discovery = Client().get(DISCOVERY).json()["authorization_signing_alg_values_supported"]
    first_jwks = Client().get("/o/.well-known/jwks.json").json()["keys"]
    assert Client().get(DISCOVERY).json()["authorization_signing_alg_values_supported"] == first_discovery
    with django_capture_on_commit_callbacks(execute=True):
        key = generate_server_key("ES384")
    assert "ES384" not in first_discovery
    assert "ES384" in Client().get(DISCOVERY).json()["authorization_signing_alg_values_supported"]
    assert key.kid in {k["kid"] for k in Client().get("/o/.well-known/jwks.json").json()["keys"]}
    assert len(first_jwks) == 1


@pytest.mark.django_db
def test_cached_documents_follow_the_host():
    first = Client().get(DISCOVERY, HTTP_HOST="localhost").json()
    second = Client().get(DISCOVERY, HTTP_HOST="127.0.0.1").json()
    assert first["issuer"] == "http://localhost/o"
    assert second["issuer"] == "http://127.0.0.1/o"
