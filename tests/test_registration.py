"""Dynamic client registration (RFC 7591, RFC 7592) with the JARM client metadata, over HTTP."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st
from joserfc.jwk import ECKey, RSAKey
from oauth2_provider.models import get_access_token_model, get_application_model

from django_jarm.keys import generate_server_key
from django_jarm.models import ClientSettings
from tests import rp
from tests.conftest import REDIRECT_URI, examples

Application = get_application_model()
AccessToken = get_access_token_model()

BASE = {
    "redirect_uris": [REDIRECT_URI],
    "client_name": "registered client",
    "grant_types": ["authorization_code"],
    "token_endpoint_auth_method": "client_secret_basic",
}


@pytest.fixture(autouse=True)
def _registration_on(settings: Any) -> None:
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "DCR_ENABLED": True,
        # Open registration, as a test needs it: no deployment should copy this.
        "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    }


def rsa_enc_key(kid: str = "rp-enc") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "enc"})


def ec_sig_key(kid: str = "rp-sig") -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig"})


def public(*keys: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def register(metadata: dict[str, Any] | str | bytes) -> Any:
    body = metadata if isinstance(metadata, (str, bytes)) else json.dumps(metadata)
    return Client().post("/o/register/", body, content_type="application/json")


def bearer(registration: dict[str, Any]) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {registration['registration_access_token']}"}


def read(registration: dict[str, Any]) -> Any:
    return Client().get(registration["registration_client_uri"], **bearer(registration))


def replace(registration: dict[str, Any], metadata: dict[str, Any] | str) -> Any:
    body = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return Client().put(
        registration["registration_client_uri"], body, content_type="application/json", **bearer(registration)
    )


def delete(registration: dict[str, Any]) -> Any:
    return Client().delete(registration["registration_client_uri"], **bearer(registration))


def stored(client_id: str) -> ClientSettings | None:
    return ClientSettings.objects.filter(application__client_id=client_id).first()


def counts() -> tuple[int, int, int]:
    return Application.objects.count(), ClientSettings.objects.count(), AccessToken.objects.count()


def jarm_part(body: dict[str, Any]) -> dict[str, Any]:
    names = (
        "authorization_signed_response_alg",
        "authorization_encrypted_response_alg",
        "authorization_encrypted_response_enc",
        "jwks",
        "jwks_uri",
        "response_modes",
    )
    return {name: body[name] for name in names if name in body}


# Round trips -----------------------------------------------------------------------------

ENC_KEY = rsa_enc_key().as_dict(private=False)
SIG_KEY = ec_sig_key().as_dict(private=False)
EC_ENC_KEY = ECKey.generate_key("P-256", parameters={"kid": "rp-ec-enc", "use": "enc"}).as_dict(private=False)

#: (registered members, what the response says, the stored row's fields, the replacement).
ROUND_TRIPS = {
    "signing alg": (
        {"authorization_signed_response_alg": "PS256"},
        {"authorization_signed_response_alg": "PS256"},
        {"authorization_signed_response_alg": "PS256"},
        {"authorization_signed_response_alg": "ES256"},
    ),
    "encryption alg and enc": (
        {
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "authorization_encrypted_response_enc": "A256GCM",
            "jwks": {"keys": [ENC_KEY]},
        },
        {
            "authorization_signed_response_alg": "RS256",
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "authorization_encrypted_response_enc": "A256GCM",
            "jwks": {"keys": [ENC_KEY]},
        },
        {
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "authorization_encrypted_response_enc": "A256GCM",
            "jwks": {"keys": [ENC_KEY]},
        },
        {"authorization_encrypted_response_alg": "ECDH-ES", "jwks": {"keys": [EC_ENC_KEY]}},
    ),
    # JARM 3: enc defaults to A128CBC-HS256 when alg is given; the response says so.
    "encryption alg alone": (
        {"authorization_encrypted_response_alg": "ECDH-ES+A128KW", "jwks": {"keys": [EC_ENC_KEY]}},
        {
            "authorization_signed_response_alg": "RS256",
            "authorization_encrypted_response_alg": "ECDH-ES+A128KW",
            "authorization_encrypted_response_enc": "A128CBC-HS256",
            "jwks": {"keys": [EC_ENC_KEY]},
        },
        {
            "authorization_encrypted_response_alg": "ECDH-ES+A128KW",
            "authorization_encrypted_response_enc": "",
            "jwks": {"keys": [EC_ENC_KEY]},
        },
        {"authorization_encrypted_response_alg": "RSA-OAEP", "jwks": {"keys": [ENC_KEY]}},
    ),
    "jwks with both kinds of key": (
        {"jwks": {"keys": [SIG_KEY, ENC_KEY]}},
        {"authorization_signed_response_alg": "RS256", "jwks": {"keys": [SIG_KEY, ENC_KEY]}},
        {"jwks": {"keys": [SIG_KEY, ENC_KEY]}},
        {"jwks": {"keys": [ENC_KEY]}},
    ),
    "jwks_uri": (
        {"jwks_uri": "https://rp.example/jwks.json"},
        {"authorization_signed_response_alg": "RS256", "jwks_uri": "https://rp.example/jwks.json"},
        {"jwks_uri": "https://rp.example/jwks.json"},
        {"jwks_uri": "https://rp.example/keys/2"},
    ),
    "response_modes": (
        {"response_modes": ["jwt", "form_post.jwt"]},
        {"authorization_signed_response_alg": "RS256", "response_modes": ["jwt", "form_post.jwt"]},
        {"response_modes": ["jwt", "form_post.jwt"]},
        {"response_modes": ["query.jwt"]},
    ),
}

DEFAULTS = {
    "authorization_signed_response_alg": "",
    "authorization_encrypted_response_alg": "",
    "authorization_encrypted_response_enc": "",
    "jwks": None,
    "jwks_uri": "",
    "response_modes": [],
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_register_read_replace_reset_delete(case):
    members, shown, fields, replacement = ROUND_TRIPS[case]
    generate_server_key("PS256")
    generate_server_key("ES256")

    created = register({**BASE, **members})
    assert created.status_code == 201, created.content
    assert created["Cache-Control"] == "no-store"
    body = created.json()
    assert jarm_part(body) == shown
    assert body["client_name"] == "registered client"
    row = stored(body["client_id"])
    assert row is not None
    for name, value in {**DEFAULTS, **fields}.items():
        assert getattr(row, name) == value, name

    fetched = read(body)
    assert fetched.status_code == 200
    assert jarm_part(fetched.json()) == shown

    # RFC 7592 2.2: the PUT body is the whole registration (it carries client_id).
    updated = replace(body, {**BASE, "client_id": body["client_id"], **replacement})
    assert updated.status_code == 200, updated.content
    row = stored(body["client_id"])
    assert row is not None
    for name in DEFAULTS:
        assert getattr(row, name) == replacement.get(name, DEFAULTS[name]), name
    body = {**body, **updated.json()}  # DOT rotates the registration access token
    assert jarm_part(read(body).json()) == jarm_part(updated.json())

    # An omitted member resets to its default.
    reset = replace(body, {**BASE, "client_id": body["client_id"]})
    assert reset.status_code == 200, reset.content
    assert jarm_part(reset.json()) == {"authorization_signed_response_alg": "RS256"}
    row = stored(body["client_id"])
    assert row is not None
    assert {name: getattr(row, name) for name in DEFAULTS} == DEFAULTS
    body = {**body, **reset.json()}

    assert delete(body).status_code == 204
    assert counts() == (0, 0, 0)
    assert read(body).status_code == 401


@pytest.mark.django_db
def test_registration_without_jarm_members_stores_no_row_and_shows_the_default():
    created = register(BASE)
    assert created.status_code == 201
    assert jarm_part(created.json()) == {"authorization_signed_response_alg": "RS256"}
    assert ClientSettings.objects.count() == 0
    assert jarm_part(read(created.json()).json()) == {"authorization_signed_response_alg": "RS256"}


@pytest.mark.django_db
def test_null_members_are_omitted_members():
    created = register({**BASE, "jwks": None, "jwks_uri": None, "authorization_signed_response_alg": None})
    assert created.status_code == 201
    assert ClientSettings.objects.count() == 0


@pytest.mark.django_db
def test_require_jarm_is_the_operators_and_survives_a_replacement():
    created = register({**BASE, "require_jarm": True, "response_modes": ["jwt"]}).json()
    row = stored(created["client_id"])
    assert row is not None
    assert row.require_jarm is False  # not client metadata: ignored (RFC 7591 2)
    assert "require_jarm" not in created

    row.require_jarm = True  # the operator, in the admin
    row.save()
    assert replace(created, {**BASE, "client_id": created["client_id"]}).status_code == 200
    row = stored(created["client_id"])
    assert row is not None
    assert row.require_jarm is True
    assert row.response_modes == []


@pytest.mark.django_db
def test_dot_never_sees_the_jarm_members(monkeypatch):
    from oauth2_provider.views import dynamic_client_registration as dcr

    seen: list[dict[str, Any]] = []
    original = dcr._build_application_kwargs

    def spy(data: dict[str, Any]) -> Any:
        seen.append(data)
        return original(data)

    monkeypatch.setattr(dcr, "_build_application_kwargs", spy)
    response = register({**BASE, "jwks": {"keys": [ENC_KEY]}, "response_modes": ["jwt"], "logo_uri": "https://x/"})
    assert response.status_code == 201
    assert seen == [{**BASE, "logo_uri": "https://x/"}]


# Refusals --------------------------------------------------------------------------------

PRIVATE_KEY = rsa_enc_key().as_dict(private=True)

#: name -> (metadata added to BASE, JARM settings, member named, words of the rule).
INVALID = {
    "unknown signing alg": (
        {"authorization_signed_response_alg": "XS256"},
        {},
        "authorization_signed_response_alg",
        "not a valid choice",
    ),
    "none": (
        {"authorization_signed_response_alg": "none"},
        {},
        "authorization_signed_response_alg",
        "Unsupported signing algorithm",
    ),
    "unknown encryption alg": (
        {"authorization_encrypted_response_alg": "RSA1_5", "jwks": {"keys": [ENC_KEY]}},
        {},
        "authorization_encrypted_response_alg",
        "not a valid choice",
    ),
    "unknown enc": (
        {
            "authorization_encrypted_response_alg": "RSA-OAEP",
            "authorization_encrypted_response_enc": "A1GCM",
            "jwks": {"keys": [ENC_KEY]},
        },
        {},
        "authorization_encrypted_response_enc",
        "not a valid choice",
    ),
    "enc without alg": (
        {"authorization_encrypted_response_enc": "A256GCM"},
        {},
        "authorization_encrypted_response_alg",
        "Choose an encryption algorithm",
    ),
    "HS256 with a hashed secret": (
        {"authorization_signed_response_alg": "HS256"},
        {"SIGNING_ALGS_SUPPORTED": ["RS256", "HS256"]},
        "authorization_signed_response_alg",
        "stores the secrets of registered clients hashed",
    ),
    "secret-derived encryption with a hashed secret": (
        {"authorization_encrypted_response_alg": "dir"},
        {},
        "authorization_encrypted_response_alg",
        "stores the secrets of registered clients hashed",
    ),
    "A128KW with a hashed secret": (
        {"authorization_encrypted_response_alg": "A128KW"},
        {},
        "authorization_encrypted_response_alg",
        "needs the raw client secret",
    ),
    "HS256 for a public client": (
        {"authorization_signed_response_alg": "HS256", "token_endpoint_auth_method": "none"},
        {"SIGNING_ALGS_SUPPORTED": ["RS256", "HS256"]},
        "authorization_signed_response_alg",
        "needs a confidential client",
    ),
    "HS256 not enabled": (
        {"authorization_signed_response_alg": "HS256"},
        {},
        "authorization_signed_response_alg",
        "HS256 is not enabled on this server",
    ),
    "private members in jwks": ({"jwks": {"keys": [PRIVATE_KEY]}}, {}, "jwks", "private or symmetric key material"),
    "symmetric key in jwks": (
        {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
        {},
        "jwks",
        "private or symmetric",
    ),
    "jwks and jwks_uri": (
        {"jwks": {"keys": [ENC_KEY]}, "jwks_uri": "https://rp.example/jwks.json"},
        {},
        "jwks_uri",
        "not both",
    ),
    "http jwks_uri": ({"jwks_uri": "http://rp.example/jwks.json"}, {}, "jwks_uri", "must use https"),
    "private-address jwks_uri": ({"jwks_uri": "https://10.1.2.3/jwks.json"}, {}, "jwks_uri", "not a public address"),
    "loopback jwks_uri": ({"jwks_uri": "https://[::1]/jwks.json"}, {}, "jwks_uri", "not a public address"),
    "localhost jwks_uri": ({"jwks_uri": "https://localhost/jwks.json"}, {}, "jwks_uri", "loopback name"),
    "jwks_uri that is no URL": ({"jwks_uri": "https://[nope/jwks.json"}, {}, "jwks_uri", "cannot be parsed"),
    "mode the server does not offer": (
        {"response_modes": ["form_post.jwt"]},
        {"RESPONSE_MODES_SUPPORTED": ["query", "query.jwt", "jwt"]},
        "response_modes",
        "does not offer form_post.jwt",
    ),
    "unknown mode": ({"response_modes": ["web_message.jwt"]}, {}, "response_modes", "Give a list of response modes"),
    "signing alg the profile forbids": (
        {"authorization_signed_response_alg": "RS256"},
        {"PROFILE": "fapi2-message-signing"},
        "authorization_signed_response_alg",
        "allows only PS256, ES256, EdDSA, Ed25519 for signing",
    ),
    "symmetric encryption the profile forbids": (
        {"authorization_encrypted_response_alg": "A256KW"},
        {"PROFILE": "fapi2-message-signing"},
        "authorization_encrypted_response_alg",
        "for encrypting responses, not A256KW",
    ),
    "plain mode the profile forbids": (
        {"response_modes": ["query.jwt", "query"]},
        {"PROFILE": "fapi2-message-signing"},
        "response_modes",
        "query is not allowed under the fapi2-message-signing profile",
    ),
    "plain query under FAPI 1": (
        {"response_modes": ["fragment", "query"]},
        {"PROFILE": "fapi1-advanced"},
        "response_modes",
        "query is not allowed under the fapi1-advanced profile",
    ),
    "disabled encryption alg": (
        {"authorization_encrypted_response_alg": "RSA-OAEP", "jwks": {"keys": [ENC_KEY]}},
        {"ENCRYPTION_ALGS_SUPPORTED": ["ECDH-ES"]},
        "authorization_encrypted_response_alg",
        "RSA-OAEP is not enabled",
    ),
    "asymmetric encryption without keys": (
        {"authorization_encrypted_response_alg": "RSA-OAEP-256"},
        {},
        "jwks",
        "encrypts to the client's public key",
    ),
    "encryption alg without a fitting key": (
        {"authorization_encrypted_response_alg": "RSA-OAEP-256", "jwks": {"keys": [SIG_KEY]}},
        {},
        "jwks",
        "has no key for RSA-OAEP-256",
    ),
    "unreadable key": (
        {"jwks": {"keys": [{"kty": "RSA", "kid": "broken", "use": "enc"}]}},
        {},
        "jwks",
        "is not a valid RSA public key",
    ),
    "jwks without keys list": ({"jwks": {"keys": "all of them"}}, {}, "jwks", "'keys' list"),
    "key member of the wrong type": ({"jwks": {"keys": [{**ENC_KEY, "kid": 7}]}}, {}, "jwks", "'kid' member"),
    "alg of the wrong type": (
        {"authorization_signed_response_alg": 256},
        {},
        "authorization_signed_response_alg",
        "Must be a string",
    ),
    "enc of the wrong type": (
        {"authorization_encrypted_response_enc": ["A256GCM"]},
        {},
        "authorization_encrypted_response_enc",
        "Must be a string",
    ),
    "over-long alg": (
        {"authorization_signed_response_alg": "PS256" * 400},
        {},
        "authorization_signed_response_alg",
        "Must be at most 10 characters",
    ),
    "jwks of the wrong type": ({"jwks": [ENC_KEY]}, {}, "jwks", "Must be a JSON object"),
    "jwks as a string": ({"jwks": json.dumps({"keys": [ENC_KEY]})}, {}, "jwks", "Must be a JSON object"),
    "jwks_uri of the wrong type": ({"jwks_uri": {"url": "https://rp.example/"}}, {}, "jwks_uri", "Must be a string"),
    "response_modes as a string": ({"response_modes": "jwt"}, {}, "response_modes", "Must be an array of strings"),
    "response_modes of numbers": ({"response_modes": [1, 2]}, {}, "response_modes", "Must be an array of strings"),
    "NUL in a key id": ({"jwks": {"keys": [{**ENC_KEY, "kid": "a\x00b"}]}}, {}, "client metadata", "NUL character"),
    "NUL in the client name": ({"client_name": "evil\x00"}, {}, "client metadata", "NUL character"),
    "markup and non-ASCII in an alg": (
        {"authorization_signed_response_alg": '"\\é\u2028'},
        {},
        "authorization_signed_response_alg",
        "is not a valid choice",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_metadata_is_refused_and_nothing_is_stored(settings, case):
    metadata, jarm, member, rule = INVALID[case]
    settings.JARM = jarm
    response = register({**BASE, **metadata})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_client_metadata"
    assert member in body["error_description"]
    assert rule in body["error_description"]
    # RFC 6749 5.2: printable ASCII without '"' and '\\'.
    assert re.fullmatch(r"[\x20\x21\x23-\x5b\x5d-\x7e]+", body["error_description"]), body["error_description"]
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("profile", "modes"),
    [("fapi1-advanced", ["fragment", "form_post", "jwt"]), ("fapi2-message-signing", ["jwt", "form_post.jwt"])],
)
def test_what_a_profile_allows_registers(settings, profile, modes):
    settings.JARM = {"PROFILE": profile}
    response = register({**BASE, "authorization_signed_response_alg": "PS256", "response_modes": modes})
    assert response.status_code == 201, response.content
    assert response.json()["response_modes"] == modes


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_replacement_changes_nothing(settings, case):
    metadata, jarm, member, rule = INVALID[case]
    generate_server_key("PS256")
    original = {**BASE, "authorization_signed_response_alg": "PS256", "response_modes": ["query.jwt"]}
    created = register(original).json()
    row_before = stored(created["client_id"])
    settings.JARM = jarm
    response = replace(created, {**original, "client_id": created["client_id"], **metadata})
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_client_metadata"
    assert member in response.json()["error_description"]
    assert rule in response.json()["error_description"]
    assert counts() == (1, 1, 1)
    row = stored(created["client_id"])
    assert row is not None
    assert row_before is not None
    assert (row.authorization_signed_response_alg, row.response_modes, row.updated) == (
        "PS256",
        ["query.jwt"],
        row_before.updated,
    )
    application = Application.objects.get(client_id=created["client_id"])
    assert (application.name, application.client_type) == ("registered client", Application.CLIENT_CONFIDENTIAL)
    settings.JARM = {}
    assert read(created).status_code == 200  # the registration access token was not rotated


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"jwks": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("{not json", "valid JSON"),
        (b"\xff\xfe{}", "valid JSON"),
        ('["a list"]', "JSON object"),
        ('"a string"', "JSON object"),
    ],
)
def test_malformed_bodies_are_invalid_client_metadata(body, words):
    response = register(body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert words in response.json()["error_description"]
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_malformed_replacement_is_invalid_client_metadata():
    created = register(BASE).json()
    for body in ("[" * 100_000, "{not json", '{"client_name": "a\\u0000"}'):
        response = replace(created, body)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_client_metadata"
    assert counts() == (1, 0, 1)


#: Any JSON value, of any type and shape.
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
#: Values a member might plausibly carry, valid or not, and anything at all.
member_value = st.one_of(
    st.sampled_from(["PS256", "ES256", "HS256", "none", "RSA-OAEP-256", "dir", "A256GCM", "ECDH-ES", "", "x" * 3000]),
    st.sampled_from(["https://rp.example/jwks.json", "http://rp.example/", "https://10.0.0.1/", "https://[x/"]),
    st.sampled_from([{"keys": [ENC_KEY]}, {"keys": [SIG_KEY, ENC_KEY]}, {"keys": [PRIVATE_KEY]}, {"keys": [{}]}]),
    st.lists(st.sampled_from(["jwt", "query", "query.jwt", "web_message", ""]), max_size=3),
    any_json,
)
metadata = st.dictionaries(st.sampled_from([*DEFAULTS, "require_jarm", "token_endpoint_auth_method"]), member_value)


@pytest.mark.fuzz
@pytest.mark.django_db
@examples(150)
@given(members=metadata)
def test_any_metadata_is_registered_or_refused_never_a_500(members):
    before = counts()
    response = register({**BASE, **members})  # an exception in the view fails the test
    if response.status_code == 201:
        assert counts()[0] == before[0] + 1
        return
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_client_metadata"
    assert counts() == before


@pytest.mark.django_db
def test_an_operator_can_let_a_registered_client_sign_with_its_secret(settings, browser, authorize, verify):
    settings.JARM = {"SIGNING_ALGS_SUPPORTED": ["RS256", "HS256"]}
    body = register(BASE).json()
    refused = replace(body, {**BASE, "client_id": body["client_id"], "authorization_signed_response_alg": "HS256"})
    assert "stores the secrets of registered clients hashed" in refused.json()["error_description"]

    # The operator, in the admin: stop hashing this client's secret and set a new one.
    application = Application.objects.get(client_id=body["client_id"])
    secret = "an-unhashed-secret-of-at-least-thirty-two-octets"
    application.hash_client_secret = False
    application.client_secret = secret
    application.save()
    accepted = replace(body, {**BASE, "client_id": body["client_id"], "authorization_signed_response_alg": "HS256"})
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["authorization_signed_response_alg"] == "HS256"

    client = SimpleNamespace(
        client_id=body["client_id"], client_type=Application.CLIENT_CONFIDENTIAL, plain_secret=secret
    )
    page, _, _ = authorize(browser, client, "code", "query.jwt", scope="read")
    _, verified = verify(consent(browser, page), client)  # joserfc, keyed with the raw secret
    assert verified.header["alg"] == "HS256"


@pytest.mark.django_db
def test_registration_is_off_unless_enabled(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "DCR_ENABLED": False}
    assert register({**BASE, "authorization_signed_response_alg": "PS256"}).status_code == 404
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_permission_is_checked_before_the_jarm_members(settings):
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.IsAuthenticatedDCRPermission",),
    }
    response = register({**BASE, "authorization_signed_response_alg": "XS256"})
    assert response.status_code == 401
    assert counts() == (0, 0, 0)


# Discovery -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/o/.well-known/openid-configuration", "/o/.well-known/oauth-authorization-server"])
def test_discovery_lists_the_registration_endpoint(settings, path):
    assert Client().get(path).json()["registration_endpoint"] == "http://testserver/o/register/"
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "DCR_ENABLED": False}
    assert "registration_endpoint" not in Client().get(path).json()


@pytest.mark.django_db
def test_registration_endpoint_follows_a_configured_issuer(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": "https://login.example/o"}
    document = Client().get("/o/.well-known/openid-configuration").json()
    assert document["registration_endpoint"] == "https://login.example/o/register/"


# A JARM flow with a freshly registered client ---------------------------------------------


def client_of(registration: dict[str, Any]) -> SimpleNamespace:
    """What the conftest helpers need of a client: its id, type and raw secret."""
    return SimpleNamespace(
        client_id=registration["client_id"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        plain_secret=registration["client_secret"],
    )


def consent(browser: Any, page: Any) -> Any:
    assert page.status_code == 200  # registered clients are asked for consent
    form = page.context["form"]
    data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
    return browser.post("/o/authorize/", {**data, "allow": "Authorize"})


@pytest.mark.django_db
def test_signed_flow_with_a_registered_client(browser, authorize, verify, redeem):
    generate_server_key("PS256")
    generate_server_key("ES256")
    registration = register({**BASE, "authorization_signed_response_alg": "PS256", "response_modes": ["jwt"]})
    assert registration.status_code == 201
    client = client_of(registration.json())

    page, verifier, _ = authorize(browser, client, "code", "jwt", scope="read")
    delivery, verified = verify(consent(browser, page), client)
    assert delivery.mode == "query"
    assert verified.header["alg"] == "PS256"
    assert verified.claims["state"] == "af0ifjsldkj"
    token = redeem(client, verified.claims["code"], verifier)
    assert token.status_code == 200, token.content
    assert token.json()["token_type"] == "Bearer"

    # Its allowed modes apply: form_post.jwt was not registered.
    page, _, _ = authorize(browser, client, "code", "form_post.jwt", scope="read")
    _, refused = verify(page, client)
    assert refused.claims["error"] == "invalid_request"

    # A replacement applies to the next response.
    body = registration.json()
    es256 = {**BASE, "client_id": body["client_id"], "authorization_signed_response_alg": "ES256"}
    assert replace(body, es256).status_code == 200
    page, _, _ = authorize(browser, client, "code", "form_post.jwt", scope="read")
    delivery, verified = verify(consent(browser, page), client)
    assert (delivery.mode, verified.header["alg"]) == ("form_post", "ES256")


@pytest.mark.django_db
@pytest.mark.parametrize("with_signing_key", [False, True], ids=["only encryption keys", "both kinds of key"])
def test_encrypted_flow_to_a_registered_key(browser, authorize, jwks, discovery, redeem, with_signing_key):
    encryption_key = rsa_enc_key("rp-enc-1")
    keys = [ec_sig_key(), encryption_key] if with_signing_key else [encryption_key]
    registration = register(
        {
            **BASE,
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "authorization_encrypted_response_enc": "A256GCM",
            "jwks": public(*keys),
        }
    )
    assert registration.status_code == 201, registration.content
    assert registration.json()["jwks"] == public(*keys)
    client = client_of(registration.json())

    page, verifier, _ = authorize(browser, client, "code", "query.jwt", scope="read")
    delivery = rp.delivery_of(consent(browser, page), REDIRECT_URI)
    header, inner = rp.decrypt_response(rp.jwt_of(delivery), encryption_key, alg="RSA-OAEP-256", enc="A256GCM")
    assert (header["kid"], header["cty"]) == ("rp-enc-1", "JWT")
    verified = rp.verify_response(inner, jwks=jwks(), issuer=discovery()["issuer"], client_id=client.client_id)
    assert verified.header["alg"] == "RS256"
    assert redeem(client, verified.claims["code"], verifier).status_code == 200
