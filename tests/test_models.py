"""ClientSettings validation and derived values; the one-active-key-per-algorithm constraint."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import override_settings
from oauth2_provider.models import get_application_model

from django_jarm.conf import ALL_SIGNING_ALGS
from django_jarm.keys import generate_server_key
from django_jarm.models import ClientSettings, ServerKey
from django_jarm.validation import jwks_uri_problem

Application = get_application_model()

LONG_SECRET = "s" * 64
ALL_MODES = "query, fragment, form_post, query.jwt, fragment.jwt, form_post.jwt, jwt"
RSA_PUBLIC_JWK = {
    "kty": "RSA",
    "kid": "enc-1",
    "use": "enc",
    "e": "AQAB",
    "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",  # noqa: E501 (RFC 7516 A.1.3)
}


@pytest.fixture(autouse=True)
def _every_algorithm_enabled(settings: Any) -> None:
    settings.JARM = {"SIGNING_ALGS_SUPPORTED": list(ALL_SIGNING_ALGS)}


@pytest.fixture
def make_settings(make_app: Any) -> Any:
    """Factory of unsaved ClientSettings; ``app={...}`` passes fields to ``make_app``."""

    def make(app: dict[str, Any] | None = None, **fields: Any) -> ClientSettings:
        return ClientSettings(application=make_app(**(app or {})), **fields)

    return make


def errors_of(client_settings: ClientSettings) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        client_settings.clean()
    return excinfo.value.message_dict


# Signing algorithm -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["none", "None", "HS1", "RSA1_5", "rs256", "ES256K"])
def test_unsupported_signing_alg_is_refused(make_settings, alg):
    assert errors_of(make_settings(authorization_signed_response_alg=alg)) == {
        "authorization_signed_response_alg": ["Unsupported signing algorithm."]
    }


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["", "RS256", "PS384", "ES512", "EdDSA"])
def test_asymmetric_or_default_signing_alg_is_accepted(make_settings, alg):
    make_settings(authorization_signed_response_alg=alg).clean()


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_refused_for_a_public_client(make_settings, alg):
    client_settings = make_settings(
        app={
            "client_type": Application.CLIENT_PUBLIC,
            "hash_client_secret": False,
            "client_secret": LONG_SECRET,
        },
        authorization_signed_response_alg=alg,
    )
    assert errors_of(client_settings) == {
        "authorization_signed_response_alg": [f"{alg} needs a confidential client; public clients have no secret."]
    }


HASHED_MESSAGE = (
    "{alg} uses the client secret as key material, and this client stores it hashed. Turn off "
    "'hash client secret' and set a new secret, or choose an asymmetric algorithm."
)


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_refused_for_a_hashed_secret(make_settings, alg):
    client_settings = make_settings(
        app={"hash_client_secret": True, "client_secret": LONG_SECRET},
        authorization_signed_response_alg=alg,
    )
    assert client_settings.application.client_secret != LONG_SECRET  # DOT hashed it
    assert errors_of(client_settings) == {"authorization_signed_response_alg": [HASHED_MESSAGE.format(alg=alg)]}


@pytest.mark.django_db
def test_hmac_refused_when_the_flag_was_turned_off_after_hashing(make_app):
    # The stored value is still a hash: turning the flag off does not bring the secret back.
    app = make_app(hash_client_secret=True, client_secret=LONG_SECRET)
    Application.objects.filter(pk=app.pk).update(hash_client_secret=False)
    client_settings = ClientSettings(
        application=Application.objects.get(pk=app.pk), authorization_signed_response_alg="HS256"
    )
    assert errors_of(client_settings) == {"authorization_signed_response_alg": [HASHED_MESSAGE.format(alg="HS256")]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("alg", "secret"),
    [
        ("HS256", "a" * 31),
        ("HS384", "a" * 47),
        ("HS512", "a" * 63),
        ("HS256", "é" * 15 + "a"),  # 16 characters but 31 octets
    ],
)
def test_hmac_refuses_a_short_secret(make_settings, alg, secret):
    client_settings = make_settings(
        app={"hash_client_secret": False, "client_secret": secret}, authorization_signed_response_alg=alg
    )
    needed = {"HS256": 32, "HS384": 48, "HS512": 64}[alg]
    assert errors_of(client_settings) == {
        "authorization_signed_response_alg": [
            f"{alg} needs a client secret of at least {needed} octets (OpenID Connect Core 16.19)."
        ]
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("alg", "secret"),
    [
        ("HS256", "a" * 32),
        ("HS384", "a" * 48),
        ("HS512", "a" * 64),
        ("HS256", "é" * 16),  # 16 characters, 32 octets
    ],
)
@override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["HS256", "HS384", "HS512"]})
def test_hmac_accepts_a_long_enough_unhashed_secret(make_settings, alg, secret):
    client_settings = make_settings(
        app={"hash_client_secret": False, "client_secret": secret}, authorization_signed_response_alg=alg
    )
    assert client_settings.application.client_secret == secret  # stored as given

    client_settings.clean()


# Encryption ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_enc_without_alg_is_refused(make_settings):
    assert errors_of(make_settings(authorization_encrypted_response_enc="A256GCM")) == {
        "authorization_encrypted_response_alg": ["Choose an encryption algorithm, or clear the content encryption."]
    }


@pytest.mark.django_db
def test_alg_with_enc_and_a_client_key_is_accepted(make_settings):
    make_settings(
        authorization_encrypted_response_alg="RSA-OAEP-256",
        authorization_encrypted_response_enc="A256GCM",
        jwks={"keys": [RSA_PUBLIC_JWK]},
    ).clean()


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW"])
def test_asymmetric_encryption_needs_a_client_key(make_settings, alg):
    assert errors_of(make_settings(authorization_encrypted_response_alg=alg)) == {
        "jwks": [f"{alg} encrypts to the client's public key: give its JWK Set or JWK Set URL."]
    }


@pytest.mark.django_db
def test_asymmetric_encryption_needs_a_key_of_the_matching_type(make_settings):
    signing_key = {**RSA_PUBLIC_JWK, "use": "sig"}
    client_settings = make_settings(
        authorization_encrypted_response_alg="ECDH-ES", jwks={"keys": [RSA_PUBLIC_JWK, signing_key]}
    )
    assert errors_of(client_settings) == {
        "jwks": ["The client's JWK Set has no key for ECDH-ES (use 'enc' or absent, of the matching type)."]
    }


@pytest.mark.django_db
def test_asymmetric_encryption_refuses_an_ambiguous_jwk_set(make_settings):
    other = {**RSA_PUBLIC_JWK, "kid": "enc-2"}
    client_settings = make_settings(
        authorization_encrypted_response_alg="RSA-OAEP", jwks={"keys": [RSA_PUBLIC_JWK, other]}
    )
    assert errors_of(client_settings) == {
        "jwks": ['The client\'s JWK Set has 2 keys that fit RSA-OAEP; mark one with "alg": "RSA-OAEP".']
    }


@pytest.mark.django_db
def test_asymmetric_encryption_with_a_jwks_uri_is_accepted_without_fetching(make_settings):
    # clean() must not fetch: the admin save would hang on a slow client.
    make_settings(authorization_encrypted_response_alg="ECDH-ES", jwks_uri="https://rp.invalid/jwks").clean()


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["A128KW", "A256GCMKW", "dir"])
def test_symmetric_encryption_refused_for_a_hashed_secret(make_settings, alg):
    client_settings = make_settings(
        app={"hash_client_secret": True, "client_secret": LONG_SECRET},
        authorization_encrypted_response_alg=alg,
    )
    assert errors_of(client_settings) == {"authorization_encrypted_response_alg": [HASHED_MESSAGE.format(alg=alg)]}


@pytest.mark.django_db
def test_symmetric_encryption_refused_for_a_public_client(make_settings):
    client_settings = make_settings(
        app={"client_type": Application.CLIENT_PUBLIC, "hash_client_secret": False, "client_secret": LONG_SECRET},
        authorization_encrypted_response_alg="A128KW",
    )
    assert errors_of(client_settings) == {
        "authorization_encrypted_response_alg": ["A128KW needs a confidential client; public clients have no secret."]
    }


#: OpenID Connect Core 16.19: the secret holds at least as many octets as the derived key.
SYMMETRIC_KEY_OCTETS = [
    ("A128KW", "", 16),
    ("A192GCMKW", "A256GCM", 24),
    ("A256KW", "A128GCM", 32),
    ("dir", "", 32),  # A128CBC-HS256 by default
    ("dir", "A128GCM", 16),
    ("dir", "A192CBC-HS384", 48),
    ("dir", "A256CBC-HS512", 64),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("alg", "enc", "octets"), SYMMETRIC_KEY_OCTETS)
def test_symmetric_encryption_refuses_a_secret_shorter_than_the_key(make_settings, alg, enc, octets):
    client_settings = make_settings(
        app={"hash_client_secret": False, "client_secret": "a" * (octets - 1)},
        authorization_encrypted_response_alg=alg,
        authorization_encrypted_response_enc=enc,
    )
    assert errors_of(client_settings) == {
        "authorization_encrypted_response_alg": [
            f"{alg} needs a client secret of at least {octets} octets (OpenID Connect Core 16.19)."
        ]
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("alg", "enc", "octets"), SYMMETRIC_KEY_OCTETS)
def test_symmetric_encryption_accepts_a_secret_as_long_as_the_key(make_settings, alg, enc, octets):
    make_settings(
        app={"hash_client_secret": False, "client_secret": "a" * octets},
        authorization_encrypted_response_alg=alg,
        authorization_encrypted_response_enc=enc,
    ).clean()


# Response modes --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "modes",
    ["jwt", {"jwt": True}, None, ["jwt", "web_message"], ["JWT"], ["query.jwt", ["jwt"]]],
    ids=["string", "object", "null", "unknown-mode", "wrong-case", "nested-list"],
)
def test_response_modes_must_be_a_list_of_known_modes(make_settings, modes):
    assert errors_of(make_settings(response_modes=modes)) == {
        "response_modes": [f"Give a list of response modes among: {ALL_MODES}."]
    }


@pytest.mark.django_db
@pytest.mark.parametrize("modes", [[], ["jwt"], ["query", "form_post.jwt", "fragment.jwt"]])
def test_response_modes_list_is_accepted(make_settings, modes):
    make_settings(response_modes=modes).clean()


# Client keys -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_jwks_with_private_members_is_refused(make_settings, member):
    key = {**RSA_PUBLIC_JWK, member: "AAAA"}
    assert errors_of(make_settings(jwks={"keys": [RSA_PUBLIC_JWK, key]})) == {
        "jwks": ["The JWK Set holds private or symmetric key material; publish public keys only."]
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "jwks",
    [RSA_PUBLIC_JWK, [RSA_PUBLIC_JWK], {"keys": RSA_PUBLIC_JWK}, {"keys": "none"}, "keys"],
    ids=["single-jwk", "bare-list", "keys-object", "keys-string", "string"],
)
def test_jwks_that_is_not_a_jwk_set_is_refused(make_settings, jwks):
    assert errors_of(make_settings(jwks=jwks)) == {"jwks": ['A JWK Set is a JSON object with a "keys" list.']}


@pytest.mark.django_db
@pytest.mark.parametrize("key", [{"n": "AQAB"}, "RSA", {"kty": 1}])
def test_jwks_key_without_kty_is_refused(make_settings, key):
    assert errors_of(make_settings(jwks={"keys": [key]})) == {"jwks": ['Every key needs a "kty".']}


@pytest.mark.django_db
def test_jwks_and_jwks_uri_together_are_refused(make_settings):
    client_settings = make_settings(jwks={"keys": [RSA_PUBLIC_JWK]}, jwks_uri="https://rp.example/jwks")
    assert errors_of(client_settings) == {"jwks_uri": ["Give either a JWK Set or a JWK Set URL, not both."]}


@pytest.mark.django_db
def test_http_jwks_uri_is_refused_by_default(make_settings):
    assert errors_of(make_settings(jwks_uri="http://rp.example/jwks")) == {
        "jwks_uri": ["The JWK Set URL must use https."]
    }


@pytest.mark.django_db
@override_settings(JARM={"CLIENT_JWKS_ALLOW_HTTP": True})
def test_http_jwks_uri_is_accepted_when_allowed(make_settings):
    make_settings(jwks_uri="http://rp.example/jwks").clean()


@pytest.mark.django_db
@override_settings(JARM={"CLIENT_JWKS_ALLOW_HTTP": True})
def test_allowing_http_does_not_allow_other_schemes(make_settings):
    assert errors_of(make_settings(jwks_uri="ftp://rp.example/jwks")) == {
        "jwks_uri": ["The JWK Set URL must use https."]
    }


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("https://rp.example:99999/jwks", "The JWK Set URL cannot be parsed (check its host and port)."),
        ("https://rp.example:0/jwks", "The JWK Set URL has an invalid port (1-65535)."),
        ("https://rp.example:/jwks", "The JWK Set URL has an invalid port (1-65535)."),
        ("https://rp.example:44x/jwks", "The JWK Set URL cannot be parsed (check its host and port)."),
        ("https://[::1/jwks", "The JWK Set URL cannot be parsed (check its host and port)."),
        ("https://user:pw@rp.example/jwks", "The JWK Set URL must not carry a user name or password."),
        ("https://@rp.example/jwks", "The JWK Set URL must not carry a user name or password."),
        ("https:///jwks", "The JWK Set URL has no host."),
        ("https://rp.example/jwks#keys", "The JWK Set URL must not have a fragment."),
        ("https://rp.example/jwks#", "The JWK Set URL must not have a fragment."),
        ("https://a..b/jwks", "The JWK Set URL has an invalid host."),
        ("https://[fe80::1%25eth0]/jwks", "The JWK Set URL has an invalid host."),
        (
            "https://rp.example/j wks",
            "The JWK Set URL must be ASCII without spaces or control characters (percent-encode them).",
        ),
        (
            "https://rp.example/jwks\x00",
            "The JWK Set URL must be ASCII without spaces or control characters (percent-encode them).",
        ),
        (
            "https://rp.exämple/jwks",
            "The JWK Set URL must be ASCII without spaces or control characters (percent-encode them).",
        ),
        ("https://rp.example/" + "k" * 2000, "The JWK Set URL is longer than 2000 characters."),
        ("http://rp.example/jwks", "The JWK Set URL must use https."),
        ("//rp.example/jwks", "The JWK Set URL must use https."),
        ("file:///etc/passwd", "The JWK Set URL must use https."),
        ("", "Give the JWK Set URL as text."),
        ("https://rp.example/jwks", ""),
        ("https://rp.example:8443/keys?tenant=a%20b", ""),
        ("https://[2606:4700::1111]:8443/jwks", ""),
        ("https://[2001:db8::1]:8443/jwks", "The JWK Set URL's host is not a public address."),
    ],
)
def test_jwks_uri_problem(uri, problem):
    assert jwks_uri_problem(uri) == problem


@override_settings(JARM={"CLIENT_JWKS_ALLOW_HTTP": True})
def test_jwks_uri_problem_allows_http_when_told():
    assert jwks_uri_problem("http://rp.example/jwks") == ""
    assert jwks_uri_problem("http://rp.example:99999/jwks") != ""


@pytest.mark.django_db
def test_an_out_of_range_port_is_refused_by_clean(make_settings):
    client_settings = make_settings(jwks_uri="https://rp.example:99999/jwks")
    assert errors_of(client_settings) == {"jwks_uri": ["The JWK Set URL cannot be parsed (check its host and port)."]}


@pytest.mark.django_db
def test_https_jwks_uri_is_accepted(make_settings):
    make_settings(jwks_uri="https://rp.example/jwks").clean()


@pytest.mark.django_db
def test_every_problem_is_reported_at_once(make_settings):
    client_settings = make_settings(
        authorization_signed_response_alg="none",
        authorization_encrypted_response_enc="A128GCM",
        response_modes="jwt",
        jwks={"keys": [{**RSA_PUBLIC_JWK, "d": "AAAA"}]},
        jwks_uri="http://rp.example/jwks",
    )
    assert errors_of(client_settings) == {
        "authorization_signed_response_alg": ["Unsupported signing algorithm."],
        "authorization_encrypted_response_alg": ["Choose an encryption algorithm, or clear the content encryption."],
        "response_modes": [f"Give a list of response modes among: {ALL_MODES}."],
        "jwks": ["The JWK Set holds private or symmetric key material; publish public keys only."],
        "jwks_uri": ["Give either a JWK Set or a JWK Set URL, not both.", "The JWK Set URL must use https."],
    }


# Derived values --------------------------------------------------------------------------


def test_signing_alg_falls_back_to_the_server_default():
    assert ClientSettings().signing_alg == "RS256"
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}):
        assert ClientSettings().signing_alg == "PS256"
        assert ClientSettings(authorization_signed_response_alg="ES256").signing_alg == "ES256"


@pytest.mark.parametrize(
    ("alg", "enc", "expected"),
    [
        ("", "", ""),
        ("", "A256GCM", ""),
        ("RSA-OAEP", "", "A128CBC-HS256"),
        ("RSA-OAEP", "A256GCM", "A256GCM"),
    ],
)
def test_encryption_enc_defaults_only_when_an_alg_is_set(alg, enc, expected):
    client_settings = ClientSettings(authorization_encrypted_response_alg=alg, authorization_encrypted_response_enc=enc)
    assert client_settings.encryption_enc == expected
    assert client_settings.is_encrypted is bool(alg)


@pytest.mark.django_db
def test_application_reaches_its_settings_as_jarm(make_app):
    app = make_app(jarm={"authorization_signed_response_alg": "ES256", "require_jarm": True})
    assert app.jarm.signing_alg == "ES256"
    assert app.jarm.require_jarm is True
    assert app.jarm.response_modes == []


# ServerKey constraint --------------------------------------------------------------------


def _copy_of(key: ServerKey, *, kid: str, status: str) -> ServerKey:
    return ServerKey(
        kid=kid,
        alg=key.alg,
        kty=key.kty,
        crv=key.crv,
        status=status,
        public_jwk=key.public_jwk,
        private_jwk_encrypted=key.private_jwk_encrypted,
    )


@pytest.mark.django_db
def test_second_active_key_for_an_alg_is_refused_by_the_database():
    active = generate_server_key("ES256")
    assert active.status == ServerKey.Status.ACTIVE

    with pytest.raises(IntegrityError), transaction.atomic():
        _copy_of(active, kid="second", status=ServerKey.Status.ACTIVE).save()

    assert list(ServerKey.objects.values_list("kid", flat=True)) == [active.kid]


@pytest.mark.django_db
def test_promoting_a_next_key_while_another_is_active_is_refused_by_the_database():
    generate_server_key("ES256")
    following = generate_server_key("ES256")
    assert following.status == ServerKey.Status.NEXT

    with pytest.raises(IntegrityError), transaction.atomic():
        ServerKey.objects.filter(pk=following.pk).update(status=ServerKey.Status.ACTIVE)

    following.refresh_from_db()
    assert following.status == ServerKey.Status.NEXT


@pytest.mark.django_db
def test_one_active_key_per_alg_and_any_number_of_others():
    es256 = generate_server_key("ES256")
    _copy_of(es256, kid="next-1", status=ServerKey.Status.NEXT).save()
    _copy_of(es256, kid="next-2", status=ServerKey.Status.NEXT).save()
    _copy_of(es256, kid="retiring-1", status=ServerKey.Status.RETIRING).save()
    _copy_of(es256, kid="retiring-2", status=ServerKey.Status.RETIRING).save()
    generate_server_key("EdDSA")  # another algorithm has its own active key

    assert sorted(ServerKey.objects.active().values_list("alg", flat=True)) == ["ES256", "EdDSA"]
    assert ServerKey.objects.filter(alg="ES256").count() == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("jarm", "fields", "field"),
    [
        ({}, {"authorization_signed_response_alg": "HS256"}, "authorization_signed_response_alg"),
        (
            {"ENCRYPTION_ALGS_SUPPORTED": ["RSA-OAEP-256"]},
            {"authorization_encrypted_response_alg": "RSA-OAEP", "jwks": {"keys": [RSA_PUBLIC_JWK]}},
            "authorization_encrypted_response_alg",
        ),
        (
            {"ENCRYPTION_ENCS_SUPPORTED": ["A256GCM"]},
            {
                "authorization_encrypted_response_alg": "RSA-OAEP",
                "authorization_encrypted_response_enc": "A128GCM",
                "jwks": {"keys": [RSA_PUBLIC_JWK]},
            },
            "authorization_encrypted_response_enc",
        ),
    ],
    ids=["hs-not-enabled", "alg-not-enabled", "enc-not-enabled"],
)
def test_algorithms_the_server_does_not_enable_are_refused(make_settings, settings, jarm, fields, field):
    settings.JARM = jarm
    errors = errors_of(make_settings(**fields))
    assert "is not enabled on this server" in errors[field][0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("profile", "fields", "field", "message"),
    [
        (
            "fapi1-advanced",
            {"authorization_signed_response_alg": "RS256"},
            "authorization_signed_response_alg",
            "FAPI 1.0 Advanced (JARM['PROFILE']) allows only PS256, ES256 for signing responses, not RS256: "
            "choose one of them.",
        ),
        (
            "fapi1-advanced",
            {"authorization_signed_response_alg": "EdDSA"},
            "authorization_signed_response_alg",
            "FAPI 1.0 Advanced (JARM['PROFILE']) allows only PS256, ES256 for signing responses, not EdDSA: "
            "choose one of them.",
        ),
        (
            "fapi2-message-signing",
            {"authorization_encrypted_response_alg": "A128KW"},
            "authorization_encrypted_response_alg",
            "FAPI 2.0 Message Signing (JARM['PROFILE']) allows only RSA-OAEP, RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW, "
            "ECDH-ES+A192KW, ECDH-ES+A256KW for encrypting responses, not A128KW: choose one of them or clear the "
            "encryption algorithm.",
        ),
        (
            "fapi2-message-signing",
            {"response_modes": ["jwt", "query", "form_post"]},
            "response_modes",
            "FAPI 2.0 Message Signing (JARM['PROFILE']) refuses every response in query, form_post: remove them "
            "from the allowed response modes.",
        ),
    ],
    ids=["fapi1-rs256", "fapi1-eddsa", "fapi2-symmetric-encryption", "fapi2-plain-modes"],
)
def test_client_settings_the_profile_refuses(make_settings, settings, profile, fields, field, message):
    settings.JARM = {"PROFILE": profile}
    secret = {"hash_client_secret": False, "client_secret": "s" * 64}  # usable for symmetric encryption
    assert errors_of(make_settings(app=secret, **fields))[field] == [message]


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA", "Ed25519"])
def test_client_settings_the_fapi2_profile_accepts(make_settings, settings, alg):
    settings.JARM = {"PROFILE": "fapi2-message-signing"}
    make_settings(authorization_signed_response_alg=alg, response_modes=["jwt", "query.jwt"]).clean()
