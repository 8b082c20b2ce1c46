"""Encrypted JARM responses (nested JWTs), decrypted and verified with joserfc."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from tests import rp
from tests.conftest import REDIRECT_URI

ENCS = ["A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "A128GCM", "A192GCM", "A256GCM"]
ASYMMETRIC = ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"]
SYMMETRIC = ["A128KW", "A192KW", "A256KW", "A128GCMKW", "A192GCMKW", "A256GCMKW", "dir"]


def client_key(family: str, crv: str = "P-256", **members: Any) -> Any:
    if family.startswith("RSA"):
        key: Any = RSAKey.generate_key(2048, parameters=members)
    elif crv == "X25519":
        key = OKPKey.generate_key("X25519", parameters=members)
    else:
        key = ECKey.generate_key(crv, parameters=members)
    return key


def public_jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def finish(response: Any, app: Any, key: Any, alg: str, enc: str, verify_jws: Any) -> dict[str, Any]:
    delivery = rp.delivery_of(response, REDIRECT_URI)
    token = rp.jwt_of(delivery)
    header, inner = rp.decrypt_response(token, key, alg=alg, enc=enc)
    assert header["alg"] == alg
    assert header["enc"] == enc
    assert header["cty"] == "JWT"
    verified = verify_jws(inner, app)
    return {"header": header, "claims": verified.claims, "delivery": delivery}


@pytest.fixture
def verify_jws(jwks, discovery):
    def check(token: str, app: Any) -> rp.VerifiedResponse:
        return rp.verify_response(
            token, jwks=jwks(), issuer=discovery()["issuer"], client_id=app.client_id, client_secret=None
        )

    return check


@pytest.mark.django_db
@pytest.mark.parametrize("enc", ENCS)
@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_asymmetric_pairs(browser, make_app, authorize, verify_jws, redeem, alg, enc):
    key = client_key(alg, kid="client-enc-1", use="enc")
    app = make_app(
        "code",
        jarm={
            "authorization_encrypted_response_alg": alg,
            "authorization_encrypted_response_enc": enc,
            "jwks": public_jwks(key),
        },
    )
    response, verifier, _ = authorize(browser, app, "code", "jwt")
    result = finish(response, app, key, alg, enc, verify_jws)
    assert result["header"]["kid"] == "client-enc-1"
    assert result["claims"]["state"] == "af0ifjsldkj"
    assert redeem(app, result["claims"]["code"], verifier).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("crv", ["P-256", "P-384", "P-521", "X25519"])
@pytest.mark.parametrize("alg", ["ECDH-ES", "ECDH-ES+A256KW"])
def test_ecdh_curves(browser, make_app, authorize, verify_jws, redeem, alg, crv):
    key = client_key(alg, crv)
    app = make_app("code", jarm={"authorization_encrypted_response_alg": alg, "jwks": public_jwks(key)})
    response, verifier, _ = authorize(browser, app, "code", "query.jwt")
    result = finish(response, app, key, alg, "A128CBC-HS256", verify_jws)  # enc defaults to A128CBC-HS256
    assert "kid" not in result["header"]  # the key has none
    assert redeem(app, result["claims"]["code"], verifier).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("enc", ENCS)
@pytest.mark.parametrize("alg", SYMMETRIC)
def test_secret_derived_pairs(browser, make_app, authorize, verify_jws, redeem, alg, enc):
    secret = "correct horse battery staple, and a long tail of entropy: 7f9c2ba4e88f827d616045507605853e"
    app = make_app(
        "code",
        hash_client_secret=False,
        client_secret=secret,
        jarm={"authorization_encrypted_response_alg": alg, "authorization_encrypted_response_enc": enc},
    )
    response, verifier, _ = authorize(browser, app, "code", "jwt")
    key = OctKey.import_key(rp.derive_secret_key(secret, alg, enc))
    result = finish(response, app, key, alg, enc, verify_jws)
    assert "kid" not in result["header"]
    assert redeem(app, result["claims"]["code"], verifier).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("response_type", ["id_token token", "code id_token", "token"])
def test_query_jwt_with_tokens_works_when_encrypted(browser, make_app, authorize, verify_jws, response_type):
    key = client_key("RSA-OAEP-256")
    app = make_app(
        response_type,
        jarm={"authorization_encrypted_response_alg": "RSA-OAEP-256", "jwks": public_jwks(key)},
    )
    response, _, _ = authorize(browser, app, response_type, "query.jwt")
    result = finish(response, app, key, "RSA-OAEP-256", "A128CBC-HS256", verify_jws)
    assert result["delivery"].mode == "query"
    assert {"access_token", "id_token"} & set(result["claims"])


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["fragment.jwt", "form_post.jwt"])
def test_errors_are_encrypted_too(browser, make_app, authorize, verify_jws, mode):
    key = client_key("ECDH-ES")
    app = make_app("code", jarm={"authorization_encrypted_response_alg": "ECDH-ES", "jwks": public_jwks(key)})
    response, _, _ = authorize(browser, app, "code", mode, scope="openid admin")
    result = finish(response, app, key, "ECDH-ES", "A128CBC-HS256", verify_jws)
    assert result["claims"]["error"] == "invalid_scope"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("jarm", "app_kwargs"),
    [
        ({"authorization_encrypted_response_alg": "RSA-OAEP"}, {}),  # no key at all
        ({"authorization_encrypted_response_alg": "RSA-OAEP", "jwks": {"keys": []}}, {}),
        ({"authorization_encrypted_response_alg": "A128KW"}, {}),  # hashed secret
        (
            {
                "authorization_encrypted_response_alg": "dir",
                "authorization_encrypted_response_enc": "A256CBC-HS512",
            },
            {"hash_client_secret": False, "client_secret": "x" * 40},
        ),  # secret shorter than the key
    ],
    ids=["no-key", "empty-jwks", "hashed-secret", "short-secret"],
)
def test_unusable_encryption_key_is_plain_server_error(browser, make_app, authorize, jarm, app_kwargs):
    app = make_app("code", jarm=jarm, **app_kwargs)
    response, _, _ = authorize(browser, app, "code", "jwt")
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert dict(delivery.params)["error"] == "server_error"
    assert "code" not in dict(delivery.params)


@pytest.mark.django_db
def test_ambiguous_client_keys_are_refused(browser, make_app, authorize):
    first, second = client_key("RSA-OAEP"), client_key("RSA-OAEP")
    app = make_app(
        "code", jarm={"authorization_encrypted_response_alg": "RSA-OAEP", "jwks": public_jwks(first, second)}
    )
    response, _, _ = authorize(browser, app, "code", "jwt")
    assert dict(rp.delivery_of(response, REDIRECT_URI).params)["error"] == "server_error"


@pytest.mark.django_db
def test_key_marked_for_the_algorithm_is_preferred(browser, make_app, authorize, verify_jws):
    plain = client_key("RSA-OAEP", kid="plain")
    marked = client_key("RSA-OAEP", kid="marked", alg="RSA-OAEP-256")
    signing = client_key("RSA-OAEP", kid="sig", use="sig")
    app = make_app(
        "code",
        jarm={
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "jwks": public_jwks(plain, marked, signing),
        },
    )
    response, _, _ = authorize(browser, app, "code", "jwt")
    result = finish(response, app, marked, "RSA-OAEP-256", "A128CBC-HS256", verify_jws)
    assert result["header"]["kid"] == "marked"


@pytest.mark.django_db
def test_a_new_client_key_is_used_from_the_next_response(browser, make_app, authorize, verify_jws):
    """The chosen client key is kept between responses, and follows every saved change."""
    old, new = client_key("RSA-OAEP", kid="old"), client_key("RSA-OAEP", kid="new")
    app = make_app("code", jarm={"authorization_encrypted_response_alg": "RSA-OAEP", "jwks": public_jwks(old)})
    for _ in range(2):
        response, _, _ = authorize(browser, app, "code", "jwt")
        assert finish(response, app, old, "RSA-OAEP", "A128CBC-HS256", verify_jws)["header"]["kid"] == "old"
    app.jarm.jwks = public_jwks(new)
    app.jarm.save()
    response, _, _ = authorize(browser, app, "code", "jwt")
    assert finish(response, app, new, "RSA-OAEP", "A128CBC-HS256", verify_jws)["header"]["kid"] == "new"
    app.jarm.authorization_encrypted_response_alg = "RSA-OAEP-256"
    app.jarm.save()
    response, _, _ = authorize(browser, app, "code", "jwt")
    assert finish(response, app, new, "RSA-OAEP-256", "A128CBC-HS256", verify_jws)["header"]["alg"] == "RSA-OAEP-256"


@pytest.mark.django_db
def test_disabled_algorithm_is_server_error(browser, make_app, authorize):
    key = client_key("RSA-OAEP")
    app = make_app("code", jarm={"authorization_encrypted_response_alg": "RSA-OAEP", "jwks": public_jwks(key)})
    with override_settings(JARM={"ENCRYPTION_ALGS_SUPPORTED": ["RSA-OAEP-256"]}):
        response, _, _ = authorize(browser, app, "code", "jwt")
    assert dict(rp.delivery_of(response, REDIRECT_URI).params)["error"] == "server_error"


@pytest.mark.django_db
def test_discovery_lists_exactly_what_is_supported(discovery):
    document = discovery()
    assert document["authorization_encryption_alg_values_supported"] == ASYMMETRIC + SYMMETRIC
    assert document["authorization_encryption_enc_values_supported"] == ENCS
    assert "RSA1_5" not in document["authorization_encryption_alg_values_supported"]
