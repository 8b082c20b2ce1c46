"""Server signing keys: generation, encryption at rest, import, the JWK Set, caching.

Thumbprints, key sizes and the at-rest format are checked with joserfc and cryptography,
never with django_jarm's own code.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from unittest import mock

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.test import override_settings
from joserfc import jwe
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey

from django_jarm import keys, state
from django_jarm.exceptions import ConfigurationError, KeyDecryptionError
from django_jarm.keys import (
    KEY_PARAMS,
    activate_server_key,
    available_signing_algs,
    decrypt_private_key,
    generate_server_key,
    get_signing_key,
    import_server_key,
    published_jwks,
    reencrypt_server_keys,
)
from django_jarm.models import ServerKey

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

#: alg -> (kty, crv, RSA modulus bits) of the generated key.
EXPECTED_KEYS = {
    "RS256": ("RSA", "", 2048),
    "RS384": ("RSA", "", 2048),
    "RS512": ("RSA", "", 2048),
    "PS256": ("RSA", "", 2048),
    "PS384": ("RSA", "", 2048),
    "PS512": ("RSA", "", 2048),
    "ES256": ("EC", "P-256", None),
    "ES384": ("EC", "P-384", None),
    "ES512": ("EC", "P-521", None),
    "EdDSA": ("OKP", "Ed25519", None),
}
PUBLIC_MEMBERS = {
    "RSA": {"kty", "n", "e", "kid", "alg", "use"},
    "EC": {"kty", "crv", "x", "y", "kid", "alg", "use"},
    "OKP": {"kty", "crv", "x", "kid", "alg", "use"},
}
JOSERFC_KEY = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}


def b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint, computed by joserfc."""
    return JOSERFC_KEY[public_jwk["kty"]].import_key(public_jwk).thumbprint()


def private_members(server_key: ServerKey) -> dict[str, str]:
    private = json.loads(decrypt_private_key(server_key.private_jwk_encrypted).export_private())
    return {name: private[name] for name in PRIVATE_MEMBERS & private.keys()}


def dot_public_jwk() -> dict[str, Any]:
    key = RSAKey.import_key(settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"])
    public = key.as_dict(private=False)
    return {"kty": "RSA", "n": public["n"], "e": public["e"], "kid": key.thumbprint(), "alg": "RS256", "use": "sig"}


@pytest.fixture
def make_pem() -> Any:
    """Factory of PEM-encoded keys made with cryptography; returns (pem, private key)."""

    def make(kind: str = "rsa", *, size: int = 2048, public: bool = False, password: bytes | None = None) -> Any:
        private: Any
        if kind == "rsa":
            private = rsa.generate_private_key(public_exponent=65537, key_size=size)
        elif kind == "p256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif kind == "p384":
            private = ec.generate_private_key(ec.SECP384R1())
        elif kind == "ed25519":
            private = ed25519.Ed25519PrivateKey.generate()
        elif kind == "dsa":
            private = dsa.generate_private_key(key_size=1024)
        else:
            raise AssertionError(kind)
        if public:
            pem = private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        else:
            encryption: Any = (
                serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
            )
            pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        return pem, private

    return make


# Generation ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("alg", list(EXPECTED_KEYS))
def test_generate_first_key_is_active_second_is_next(alg):
    first = generate_server_key(alg)
    second = generate_server_key(alg)

    kty, crv, bits = EXPECTED_KEYS[alg]
    assert [(k.alg, k.kty, k.crv) for k in (first, second)] == [(alg, kty, crv)] * 2
    if alg == "RS256":
        # DOT's OIDC key signs RS256 already: a new key waits for clients' JWK Sets like a rotation.
        assert (first.status, first.activated) == (ServerKey.Status.NEXT, None)
        first = activate_server_key(first.kid, force=True)
    assert first.status == ServerKey.Status.ACTIVE
    assert first.activated is not None
    assert second.status == ServerKey.Status.NEXT
    assert second.activated is None
    assert first.kid != second.kid
    for server_key in (first, second):
        public = server_key.public_jwk
        assert set(public) == PUBLIC_MEMBERS[kty]
        assert (public["alg"], public["use"], public["kid"]) == (alg, "sig", server_key.kid)
        assert public.get("crv", "") == crv
        if bits:
            assert len(b64decode(public["n"])) * 8 == bits


def test_key_params_cover_exactly_the_asymmetric_algorithms():
    assert set(KEY_PARAMS) == set(EXPECTED_KEYS)


@pytest.mark.django_db
@pytest.mark.parametrize("alg", list(EXPECTED_KEYS))
def test_kid_is_the_rfc7638_thumbprint(alg):
    server_key = generate_server_key(alg)
    assert server_key.kid == thumbprint(server_key.public_jwk)
    # The stored private key is the one the public JWK describes.
    private = json.loads(decrypt_private_key(server_key.private_jwk_encrypted).export_private())
    assert thumbprint(private) == server_key.kid


@pytest.mark.django_db
def test_generate_refuses_an_algorithm_without_server_keys():
    with pytest.raises(ConfigurationError, match=r"^Cannot generate a key for 'HS256'; choose one of RS256, "):
        generate_server_key("HS256")
    assert not ServerKey.objects.exists()


@pytest.mark.django_db
def test_generate_with_a_larger_rsa_size():
    server_key = generate_server_key("PS256", rsa_size=3072)
    assert len(b64decode(server_key.public_jwk["n"])) * 8 == 3072


# Encryption at rest ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA"])
def test_private_key_is_stored_as_a_compact_jwe(alg):
    server_key = generate_server_key(alg)
    stored = ServerKey.objects.values_list("private_jwk_encrypted", flat=True).get(pk=server_key.pk)

    parts = stored.split(".")
    assert len(parts) == 5
    header = json.loads(b64decode(parts[0]))
    assert (header["alg"], header["enc"]) == ("dir", "A256GCM")
    secrets = private_members(server_key)
    assert "d" in secrets
    for value in secrets.values():
        assert value not in stored
    assert '"d"' not in stored


def _storage_key(secret: str) -> OctKey:
    # The v1 derivation: changing it makes every stored key undecryptable.
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"django_jarm server keys",
        info=b"django_jarm key encryption v1",
    ).derive(secret.encode())
    return OctKey.import_key(derived)


@pytest.mark.django_db
def test_stored_keys_decrypt_with_the_documented_derivation():
    server_key = generate_server_key("ES256")
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "my key secret"}):
        other = generate_server_key("EdDSA")

    for stored, secret in ((server_key, settings.SECRET_KEY), (other, "my key secret")):
        plaintext = jwe.decrypt_compact(
            stored.private_jwk_encrypted, _storage_key(secret), algorithms=["dir", "A256GCM"]
        ).plaintext
        private = json.loads(plaintext)
        assert thumbprint(private) == stored.kid
        assert "d" in private


@pytest.mark.django_db
def test_decrypting_with_another_secret_fails_without_revealing_anything():
    server_key = generate_server_key("ES256")
    secrets = private_members(server_key)

    with (
        override_settings(JARM={"KEY_ENCRYPTION_SECRET": "another secret"}),
        pytest.raises(KeyDecryptionError) as excinfo,
    ):
        decrypt_private_key(server_key.private_jwk_encrypted, kid=server_key.kid)

    message = str(excinfo.value)
    assert message == (
        f"Server key {server_key.kid} cannot be decrypted with JARM['KEY_ENCRYPTION_SECRET'] (or SECRET_KEY) "
        "or their fallbacks; restore the secret it was stored under, or add it to the fallbacks and "
        "run `manage.py jarm_keys reencrypt`."
    )
    assert isinstance(excinfo.value, ConfigurationError)
    assert "another secret" not in message
    assert settings.SECRET_KEY not in message
    assert all(value not in message for value in secrets.values())


@pytest.mark.django_db
def test_changing_secret_key_loses_keys_unless_a_key_encryption_secret_is_set():
    derived = generate_server_key("ES256")
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "stable"}):
        independent = generate_server_key("EdDSA")

    with override_settings(SECRET_KEY="rotated"):
        with pytest.raises(KeyDecryptionError):
            decrypt_private_key(derived.private_jwk_encrypted)
        with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "stable"}):
            assert decrypt_private_key(independent.private_jwk_encrypted).thumbprint() == independent.kid


@pytest.mark.django_db
def test_keys_stay_readable_under_secret_key_fallbacks():
    server_key = generate_server_key("ES256")
    with override_settings(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]):
        assert decrypt_private_key(server_key.private_jwk_encrypted).thumbprint() == server_key.kid
        rewritten = generate_server_key("EdDSA")  # new keys go under the current secret
    assert_stored_under(rewritten, "rotated")


@pytest.mark.django_db
def test_keys_stay_readable_under_key_encryption_secret_fallbacks():
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "old"}):
        server_key = generate_server_key("ES256")
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "new", "KEY_ENCRYPTION_SECRET_FALLBACKS": ["old"]}):
        assert decrypt_private_key(server_key.private_jwk_encrypted).thumbprint() == server_key.kid
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "new"}), pytest.raises(KeyDecryptionError):
        decrypt_private_key(server_key.private_jwk_encrypted)


@pytest.mark.django_db
def test_reencrypt_moves_keys_to_the_current_secret():
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "old"}):
        active = generate_server_key("ES256")
        retired = generate_server_key("EdDSA")
    ServerKey.objects.filter(pk=retired.pk).update(status=ServerKey.Status.RETIRED)

    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "new", "KEY_ENCRYPTION_SECRET_FALLBACKS": ["old"]}):
        assert reencrypt_server_keys() == 1

    active.refresh_from_db()
    assert_stored_under(active, "new")
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "new"}):
        assert decrypt_private_key(active.private_jwk_encrypted).thumbprint() == active.kid


def assert_stored_under(server_key: ServerKey, secret: str) -> None:
    plaintext = jwe.decrypt_compact(
        server_key.private_jwk_encrypted, _storage_key(secret), algorithms=["dir", "A256GCM"]
    ).plaintext
    assert thumbprint(json.loads(plaintext)) == server_key.kid


@pytest.mark.django_db
def test_get_signing_key_reports_an_undecryptable_key(make_app):
    server_key = generate_server_key("ES256")
    with (
        override_settings(JARM={"KEY_ENCRYPTION_SECRET": "another secret"}),
        pytest.raises(KeyDecryptionError, match=f"^Server key {server_key.kid} cannot be decrypted"),
    ):
        get_signing_key("ES256", make_app())


def test_garbage_is_not_decryptable():
    with pytest.raises(KeyDecryptionError, match=r"^Server key \? cannot be decrypted"):
        decrypt_private_key("not.a.jwe.at.all")


# Import ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "alg", "kty", "crv"),
    [("rsa", "PS256", "RSA", ""), ("p256", "ES256", "EC", "P-256"), ("ed25519", "EdDSA", "OKP", "Ed25519")],
)
def test_import_a_private_pem(make_pem, kind, alg, kty, crv):
    pem, private = make_pem(kind)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected_kid = JOSERFC_KEY[kty].import_key(public_pem).thumbprint()

    server_key = import_server_key(pem, alg)

    assert (server_key.kid, server_key.alg, server_key.kty, server_key.crv) == (expected_kid, alg, kty, crv)
    assert server_key.status == ServerKey.Status.ACTIVE
    assert not PRIVATE_MEMBERS & server_key.public_jwk.keys()
    assert decrypt_private_key(server_key.private_jwk_encrypted).thumbprint() == expected_kid


@pytest.mark.django_db
def test_import_becomes_next_when_a_key_is_active(make_pem):
    generate_server_key("ES256")
    pem, _ = make_pem("p256")
    assert import_server_key(pem, "ES256").status == ServerKey.Status.NEXT


@pytest.mark.django_db
def test_import_an_encrypted_pem_with_its_password(make_pem):
    pem, _ = make_pem("p256", password=b"pem password")
    assert import_server_key(pem, "ES256", password=b"pem password").alg == "ES256"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("pem_args", "alg", "message"),
    [
        ({"kind": "rsa", "public": True}, "PS256", "The PEM holds a public key; a signing key needs its private part."),
        ({"kind": "rsa", "size": 1024}, "PS256", "RSA keys must have at least 2048 bits."),
        ({"kind": "p256"}, "PS256", "PS256 needs an RSA key, not an EC P-256 key."),
        ({"kind": "p384"}, "ES256", "ES256 needs an EC P-256 key, not an EC P-384 key."),
        ({"kind": "rsa"}, "ES256", "ES256 needs an EC P-256 key, not an RSA key."),
        (
            {"kind": "p256", "password": b"pem password"},
            "ES256",
            "The PEM does not hold a readable RSA, EC or Ed25519 private key.",
        ),
    ],
    ids=["public-pem", "rsa-1024", "ec-for-ps256", "p384-for-es256", "rsa-for-es256", "encrypted-no-password"],
)
def test_import_refuses_an_unfit_key(make_pem, pem_args, alg, message):
    pem, _ = make_pem(**pem_args)
    with pytest.raises(ConfigurationError) as excinfo:
        import_server_key(pem, alg)
    assert str(excinfo.value) == message
    assert not ServerKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "pem",
    [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
    ids=["empty", "garbage", "truncated"],
)
def test_import_refuses_garbage(pem):
    with pytest.raises(
        ConfigurationError, match=r"^The PEM does not hold a readable RSA, EC or Ed25519 private key\.$"
    ):
        import_server_key(pem, "PS256")
    assert not ServerKey.objects.exists()


@pytest.mark.django_db
def test_import_refuses_a_symmetric_algorithm(make_pem):
    pem, _ = make_pem("rsa")
    with pytest.raises(ConfigurationError, match=r"^Server keys sign with one of RS256, .*, not 'HS256'\.$"):
        import_server_key(pem, "HS256")


@pytest.mark.django_db
def test_import_refuses_an_unsupported_key_type(make_pem):
    pem, _ = make_pem("dsa")
    with pytest.raises(ConfigurationError) as excinfo:
        import_server_key(pem, "RS256")
    assert "object at 0x" not in str(excinfo.value)  # no jwcrypto internals in the message
    assert not ServerKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("second_alg", ["RS256", "PS256"])
def test_import_refuses_a_key_already_stored(make_pem, second_alg):
    pem, _ = make_pem("rsa")
    server_key = import_server_key(pem, "RS256")
    with pytest.raises(ConfigurationError) as excinfo:
        import_server_key(pem, second_alg)
    assert str(excinfo.value) == f"Key {server_key.kid} is already stored."
    assert ServerKey.objects.count() == 1


# Published JWK Set -----------------------------------------------------------------------


@pytest.mark.django_db
def test_published_jwks_without_server_keys_holds_dots_key():
    assert published_jwks() == {"keys": [dot_public_jwk()]}


@pytest.mark.django_db
def test_published_jwks_holds_published_keys_only():
    es256_active = generate_server_key("ES256")
    es256_next = generate_server_key("ES256")
    ps256_retiring = generate_server_key("PS256")
    eddsa_retired = generate_server_key("EdDSA")
    ServerKey.objects.filter(pk=ps256_retiring.pk).update(status=ServerKey.Status.RETIRING)
    ServerKey.objects.filter(pk=eddsa_retired.pk).update(status=ServerKey.Status.RETIRED)

    jwks = published_jwks()

    assert jwks["keys"][0] == dot_public_jwk()
    by_kid = {key["kid"]: key for key in jwks["keys"][1:]}
    assert by_kid == {key.kid: key.public_jwk for key in (es256_active, es256_next, ps256_retiring)}
    assert len(jwks["keys"]) == 4
    for key in jwks["keys"]:
        assert not PRIVATE_MEMBERS & key.keys()
        assert key["kid"] == thumbprint(key)
    assert len(KeySet.import_key_set(jwks).keys) == 4


@pytest.mark.django_db
def test_published_jwks_holds_dots_inactive_keys(make_pem):
    inactive_pem, _ = make_pem("rsa")
    dot_settings = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEYS_INACTIVE": [inactive_pem.decode()]}
    with override_settings(OAUTH2_PROVIDER=dot_settings):
        jwks = published_jwks()
        signing_key = get_signing_key("RS256", None)

    inactive_kid = RSAKey.import_key(inactive_pem).thumbprint()
    assert [key["kid"] for key in jwks["keys"]] == [dot_public_jwk()["kid"], inactive_kid]
    assert signing_key.kid == dot_public_jwk()["kid"]  # the active DOT key signs


@pytest.mark.django_db
def test_published_jwks_is_empty_without_any_key():
    with override_settings(OAUTH2_PROVIDER={**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}):
        assert published_jwks() == {"keys": []}


# Available algorithms --------------------------------------------------------------------


@pytest.mark.django_db
def test_available_signing_algs_with_dots_key_only():
    assert available_signing_algs() == ["RS256"]


@pytest.mark.django_db
def test_available_signing_algs_need_an_active_key():
    generate_server_key("ES256")
    generate_server_key("PS256")
    generate_server_key("EdDSA", status=ServerKey.Status.NEXT)
    retiring = generate_server_key("ES384")
    ServerKey.objects.filter(pk=retiring.pk).update(status=ServerKey.Status.RETIRING)

    assert available_signing_algs() == ["RS256", "PS256", "ES256"]


@pytest.mark.django_db
def test_available_signing_algs_without_dots_key():
    generate_server_key("ES256")
    with override_settings(OAUTH2_PROVIDER={**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}):
        assert available_signing_algs() == ["ES256"]


@pytest.mark.django_db
def test_available_signing_algs_list_hmac_only_when_enabled():
    generate_server_key("ES256")
    with override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["ES256", "HS256", "HS512", "PS256"]}):
        assert available_signing_algs() == ["ES256", "HS256", "HS512"]


@pytest.mark.django_db
def test_available_signing_algs_follow_the_profile():
    generate_server_key("ES256")
    generate_server_key("ES384")
    with override_settings(JARM={"PROFILE": "fapi1-advanced"}):
        assert available_signing_algs() == ["ES256"]  # not RS256 although DOT's key exists


# Signing keys ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_get_signing_key_returns_the_active_key(make_app):
    active = generate_server_key("ES256")
    generate_server_key("ES256")  # next: published, not signing

    signing_key = get_signing_key("ES256", make_app())

    assert (signing_key.alg, signing_key.kid) == ("ES256", active.kid)
    assert signing_key.jwk.has_private
    assert ECKey.import_key(json.loads(signing_key.jwk.export_public())).thumbprint() == active.kid


@pytest.mark.django_db
def test_rs256_falls_back_to_dots_key_and_prefers_a_server_key(make_app, published_since):
    app = make_app()
    assert get_signing_key("RS256", app).kid == dot_public_jwk()["kid"]

    server_key = generate_server_key("RS256")
    assert server_key.status == ServerKey.Status.NEXT  # published first: DOT's key signs meanwhile
    assert get_signing_key("RS256", app).kid == dot_public_jwk()["kid"]
    published_since(server_key)
    activate_server_key(server_key.kid)
    state.clear()

    assert get_signing_key("RS256", app).kid == server_key.kid


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["ES256", "PS512", "EdDSA"])
def test_get_signing_key_without_an_active_key(make_app, alg):
    generate_server_key(alg, status=ServerKey.Status.NEXT)
    with pytest.raises(ConfigurationError) as excinfo:
        get_signing_key(alg, make_app())
    assert str(excinfo.value) == f"No active server key for {alg}; run `manage.py jarm_keys generate --alg {alg}`."


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["PS256", "HS256", "none", "RSA1_5"])
def test_get_signing_key_refuses_a_disabled_alg(make_app, alg):
    generate_server_key("PS256")
    with override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["ES256"]}), pytest.raises(ConfigurationError) as excinfo:
        get_signing_key(alg, make_app())
    assert str(excinfo.value) == f"{alg} is not enabled in JARM['SIGNING_ALGS_SUPPORTED'] (or the profile)."


@pytest.mark.django_db
def test_get_signing_key_refuses_an_alg_outside_the_profile(make_app):
    generate_server_key("PS384")
    with override_settings(JARM={"PROFILE": "fapi2-message-signing"}), pytest.raises(ConfigurationError):
        get_signing_key("PS384", make_app())


@pytest.mark.django_db
@override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["HS256", "HS512"]})
def test_hmac_key_is_the_client_secret(make_app):
    secret = "x" * 40 + "é" * 11  # 62 octets: enough for HS256, not for HS512
    app = make_app(hash_client_secret=False, client_secret=secret)

    signing_key = get_signing_key("HS256", app)

    expected = OctKey.import_key(secret.encode())
    assert (signing_key.alg, signing_key.kid) == ("HS256", expected.thumbprint())
    assert b64decode(json.loads(signing_key.jwk.export())["k"]) == secret.encode()
    with pytest.raises(ConfigurationError, match=r"^HS512 needs a client secret of at least 64 octets"):
        get_signing_key("HS512", app)


@pytest.mark.django_db
@override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["HS256"]})
def test_hmac_key_refused_for_a_hashed_secret(make_app):
    app = make_app(hash_client_secret=True, client_secret="x" * 64)
    with pytest.raises(ConfigurationError, match="this client stores it hashed"):
        get_signing_key("HS256", app)


# Caching ---------------------------------------------------------------------------------


@pytest.fixture
def count_decryptions() -> Any:
    with mock.patch("django_jarm.keys.decrypt_private_key", wraps=keys.decrypt_private_key) as decrypt:
        yield decrypt


@pytest.mark.django_db
def test_second_call_neither_decrypts_nor_queries(make_app, count_decryptions, django_assert_num_queries):
    app = make_app()
    server_key = generate_server_key("ES256")

    first = get_signing_key("ES256", app)
    with django_assert_num_queries(0):
        second = get_signing_key("ES256", app)
        available_signing_algs()
        published_jwks()

    assert count_decryptions.call_count == 1
    assert second.kid == first.kid == server_key.kid
    assert second.jwk is first.jwk


@pytest.mark.django_db
def test_new_key_is_seen_by_the_next_call(make_app):
    app = make_app()
    with pytest.raises(ConfigurationError):
        get_signing_key("ES256", app)  # a snapshot without ES256
    server_key = generate_server_key("ES256")
    assert get_signing_key("ES256", app).kid == server_key.kid
    assert server_key.kid in {key["kid"] for key in published_jwks()["keys"]}


@pytest.mark.django_db
def test_rotation_is_seen_by_the_next_call(make_app, count_decryptions, django_capture_on_commit_callbacks):
    app = make_app()
    with django_capture_on_commit_callbacks(execute=True):
        old = generate_server_key("PS256")
    assert get_signing_key("PS256", app).kid == old.kid

    ServerKey.objects.filter(pk=old.pk).update(status=ServerKey.Status.RETIRING)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        new = generate_server_key("PS256")

    assert len(callbacks) == 1
    assert new.status == ServerKey.Status.ACTIVE
    assert get_signing_key("PS256", app).kid == new.kid
    assert {key["kid"] for key in published_jwks()["keys"]} >= {old.kid, new.kid}
    assert count_decryptions.call_count == 2
