"""tokens: every signing algorithm and every (key management, content encryption) pair, each
token verified or decrypted with joserfc; then the failures, which never leak jwcrypto."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from jwcrypto import jwk

from django_jarm.client_keys import EncryptionKey
from django_jarm.exceptions import ConfigurationError
from django_jarm.keys import SigningKey
from django_jarm.tokens import CompactJWT, encrypt, response_claims, sign
from tests import rp

#: Signing algorithm -> the joserfc key it is made with: RSA, a curve, or an HMAC secret length.
SIGNING = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "P-256",
    "ES384": "P-384",
    "ES512": "P-521",
    "EdDSA": "Ed25519",
    "HS256": 32,
    "HS384": 48,
    "HS512": 64,
}
ENCS = ["A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "A128GCM", "A192GCM", "A256GCM"]
RSA_ALGS = ["RSA-OAEP", "RSA-OAEP-256"]
ECDH_ALGS = ["ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"]
#: Symmetric key management -> octets of its key (RFC 7518 4.4, 4.7); dir takes the enc's size.
KEY_WRAP_OCTETS = {"A128KW": 16, "A192KW": 24, "A256KW": 32, "A128GCMKW": 16, "A192GCMKW": 24, "A256GCMKW": 32}
ENC_OCTETS = {
    "A128CBC-HS256": 32,
    "A192CBC-HS384": 48,
    "A256CBC-HS512": 64,
    "A128GCM": 16,
    "A192GCM": 24,
    "A256GCM": 32,
}

CLAIMS = {"iss": "https://as.example", "aud": "client-1", "exp": 2_000_000_000, "code": "c0de", "state": "s"}
#: RFC 3986 2.3 "unreserved": what a CompactJWT is made of (response modes append it unescaped).
UNRESERVED = re.compile(r"[A-Za-z0-9_\-.]+")


def assert_compact(token: str, segments: int) -> None:
    assert type(token) is CompactJWT
    assert UNRESERVED.fullmatch(token)
    assert token.count(".") == segments - 1


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def octets(count: int, fill: int = 7) -> bytes:
    return bytes((fill + index) % 256 for index in range(count))


def to_jwcrypto(key: Any, *, private: bool = True) -> jwk.JWK:
    return jwk.JWK(**key.as_dict(private=private))


def oct_jwk(secret: bytes) -> jwk.JWK:
    return jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(secret).rstrip(b"=").decode())


@pytest.fixture(scope="module")
def joserfc_keys() -> dict[str, Any]:
    """One key per family, made by joserfc; RSA generation is slow, so once per module."""
    return {
        "RSA": RSAKey.generate_key(2048),
        "P-256": ECKey.generate_key("P-256"),
        "P-384": ECKey.generate_key("P-384"),
        "P-521": ECKey.generate_key("P-521"),
        "Ed25519": OKPKey.generate_key("Ed25519"),
        "X25519": OKPKey.generate_key("X25519"),
    }


@pytest.fixture(scope="module")
def signing_key(joserfc_keys: dict[str, Any]) -> Any:
    """``make(alg)`` -> (SigningKey for tokens, the joserfc key that verifies it)."""
    parsed: dict[str, SigningKey] = {}

    def make(alg: str) -> tuple[SigningKey, Any]:
        family = SIGNING[alg]
        if isinstance(family, int):
            secret = octets(family)
            return SigningKey(alg, f"hmac-{alg}", oct_jwk(secret)), OctKey.import_key(secret)
        verifier = joserfc_keys[family]
        if alg not in parsed:  # parsed once, as the key cache of django_jarm.keys does
            parsed[alg] = SigningKey(alg, f"server-{alg}", to_jwcrypto(verifier))
        return parsed[alg], verifier

    return make


# Claims -----------------------------------------------------------------------------------


def test_claims_order_numbers_and_reserved_names():
    claims = response_claims(
        [("access_token", "at"), ("expires_in", "3600"), ("iss", "https://evil.example"), ("state", "s")],
        issuer="https://as.example",
        client_id="client-1",
        lifetime=120,
        now=1_000,
    )
    assert claims == {
        "iss": "https://as.example",
        "aud": "client-1",
        "exp": 1_120,
        "iat": 1_000,
        "access_token": "at",
        "expires_in": 3600,
        "state": "s",
    }


def test_iat_can_be_left_out():
    assert "iat" not in response_claims([], issuer="i", client_id="c", lifetime=10, include_iat=False)


def test_a_non_numeric_expires_in_stays_a_string():
    claims = response_claims([("expires_in", "soon")], issuer="i", client_id="c", lifetime=10, now=0)
    assert claims["expires_in"] == "soon"


# Signing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", list(SIGNING))
def test_every_signing_algorithm_verifies_with_joserfc(signing_key, alg):
    key, verifier = signing_key(alg)
    token = sign(CLAIMS, key)
    assert_compact(token, 3)
    decoded = jwt.decode(token, verifier, algorithms=[alg])
    assert decoded.header == {"alg": alg, "kid": key.kid}
    assert decoded.claims == CLAIMS


@pytest.mark.parametrize("alg", ["ES256", "PS256", "HS256"])
def test_every_call_signs_its_own_claims(signing_key, alg):
    key, verifier = signing_key(alg)
    first, second = sign({**CLAIMS, "state": "one"}, key), sign({**CLAIMS, "state": "two"}, key)
    assert jwt.decode(first, verifier, algorithms=[alg]).claims["state"] == "one"
    assert jwt.decode(second, verifier, algorithms=[alg]).claims["state"] == "two"


def test_one_parsed_key_signs_under_each_algorithm_it_is_given(joserfc_keys):
    # A prepared signature is per (key, algorithm): RS256 and PS256 on one RSA key stay distinct.
    verifier = joserfc_keys["RSA"]
    parsed = to_jwcrypto(verifier)
    for alg in ("RS256", "PS256", "RS512", "PS384"):
        token = sign(CLAIMS, SigningKey(alg, "rsa", parsed))
        assert jwt.decode(token, verifier, algorithms=[alg]).header["alg"] == alg


def test_every_key_signs_with_itself_however_many_keys_are_prepared():
    # More keys than the prepared signatures kept: each still signs with its own key, before
    # and after the memo is emptied, including keys that are dropped and made anew.
    made = [ECKey.generate_key("P-256") for _ in range(70)]
    for round_ in range(2):
        for number, verifier in enumerate(made):
            key = SigningKey("ES256", f"k{number}", to_jwcrypto(verifier))
            token = sign({**CLAIMS, "state": f"{round_}-{number}"}, key)
            assert jwt.decode(token, verifier, algorithms=["ES256"]).claims["state"] == f"{round_}-{number}"


def _counting_op_keys(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operations jwcrypto is asked a key for: its use and key_ops checks run on each."""
    operations: list[str] = []
    real = jwk.JWK.get_op_key

    def counted(self: jwk.JWK, operation: str | None = None, arg: Any = None) -> Any:
        operations.append(str(operation))
        return real(self, operation, arg)

    monkeypatch.setattr(jwk.JWK, "get_op_key", counted)
    return operations


@pytest.mark.parametrize("alg", ["RS256", "PS256", "PS512", "ES256", "ES384", "ES512"])
def test_a_server_key_is_checked_and_taken_once_not_per_response(signing_key, monkeypatch, alg):
    # The signature of an RSA or EC key is prepared once: the checks, the key object, the
    # padding and hash. Every later response is the bare signing call.
    key, verifier = signing_key(alg)
    parsed = SigningKey(alg, key.kid, jwk.JWK.from_json(key.jwk.export()))  # a key not prepared yet
    operations = _counting_op_keys(monkeypatch)
    for number in range(5):
        token = sign({**CLAIMS, "state": str(number)}, parsed)
        assert jwt.decode(token, verifier, algorithms=[alg]).claims["state"] == str(number)
    assert operations == ["sign"]


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_a_client_rsa_key_is_checked_and_taken_once_not_per_response(joserfc_keys, signing_key, monkeypatch, alg):
    _, decrypting = recipient(alg, "A128GCM", joserfc_keys)
    key = EncryptionKey(alg, "A128GCM", "rp-enc-1", to_jwcrypto(decrypting, private=False))  # not prepared yet
    signed = sign(CLAIMS, signing_key("ES256")[0])
    operations = _counting_op_keys(monkeypatch)
    for _ in range(5):
        decrypt_and_verify(encrypt(signed, key), decrypting, alg, "A128GCM", signing_key)
    assert operations == ["wrapKey"]


@pytest.mark.parametrize("enc", ENCS)
def test_content_encryption_sizes(joserfc_keys, signing_key, enc):
    # RFC 7518 5.2.2.1 and 5.3: a 128-bit IV and a tag of half the key for AES-CBC-HMAC; a 96-bit
    # IV and a 128-bit tag for AES-GCM; the ciphertext padded to the block (CBC) or not (GCM).
    key, _ = recipient("RSA-OAEP-256", enc, joserfc_keys)
    signed = sign(CLAIMS, signing_key("ES256")[0])
    _, _, iv, ciphertext, tag = (
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in encrypt(signed, key).split(".")
    )
    if enc in ENCS[:3]:
        assert (len(iv), len(tag)) == (16, ENC_OCTETS[enc] // 2)
        assert len(ciphertext) == (len(signed) // 16 + 1) * 16
    else:
        assert (len(iv), len(tag), len(ciphertext)) == (12, 16, len(signed))


def test_a_key_restricted_to_verification_cannot_sign(joserfc_keys):
    for constraint in ({"key_ops": ["verify"]}, {"use": "enc"}):
        restricted = jwk.JWK(**joserfc_keys["P-256"].as_dict(private=True), **constraint)
        with pytest.raises(ConfigurationError, match=r"^Signing with ES256 key k failed: "):
            sign(CLAIMS, SigningKey("ES256", "k", restricted))


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ec_signatures_are_fixed_length_r_and_s(signing_key, alg):
    # RFC 7518 3.4: R and S each padded to the curve's size, even when their leading octet is 0.
    key, verifier = signing_key(alg)
    size = {"ES256": 32, "ES384": 48, "ES512": 66}[alg]
    # R or S has a leading zero octet in about 1 signature in 128: 600 make one near certain.
    for number in range(600):
        token = sign({**CLAIMS, "state": str(number)}, key)
        segment = token.rsplit(".", 1)[1]
        assert len(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))) == 2 * size
        assert jwt.decode(token, verifier, algorithms=[alg])


def test_unicode_claims_survive(signing_key):
    key, verifier = signing_key("ES256")
    claims = {**CLAIMS, "state": 'état ☃ \u0000 "quoted"'}
    assert jwt.decode(sign(claims, key), verifier, algorithms=["ES256"]).claims["state"] == claims["state"]


# Encryption -------------------------------------------------------------------------------


def recipient(alg: str, enc: str, joserfc_keys: dict[str, Any], *, crv: str = "P-256") -> tuple[EncryptionKey, Any]:
    """(EncryptionKey for tokens, the joserfc key that decrypts): public keys carry a kid,
    secret-derived ones none, as client_keys builds them."""
    if alg in RSA_ALGS or alg.startswith("ECDH-ES"):
        private = joserfc_keys["RSA" if alg in RSA_ALGS else crv]
        return EncryptionKey(alg, enc, "rp-enc-1", to_jwcrypto(private, private=False)), private
    secret = octets(ENC_OCTETS[enc] if alg == "dir" else KEY_WRAP_OCTETS[alg], fill=91)
    return EncryptionKey(alg, enc, None, oct_jwk(secret)), OctKey.import_key(secret)


def decrypt_and_verify(token: str, decrypting: Any, alg: str, enc: str, signing_key: Any) -> dict[str, Any]:
    """Outer JWE decrypted, inner JWS verified, both with joserfc; returns the outer header."""
    assert token.count(".") == 4
    header, inner = rp.decrypt_response(token, decrypting, alg=alg, enc=enc)
    assert header == header_of(token)
    signing, verifier = signing_key("ES256")
    decoded = jwt.decode(inner, verifier, algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "kid": signing.kid}
    assert decoded.claims == CLAIMS
    return header


def extra_members(alg: str) -> set[str]:
    """What the key management algorithm adds to the header (RFC 7518 4.6.1.1, 4.7.1)."""
    if alg.startswith("ECDH-ES"):
        return {"epk"}
    if alg.endswith("GCMKW"):
        return {"iv", "tag"}
    return set()


@pytest.mark.parametrize("enc", ENCS)
@pytest.mark.parametrize("alg", RSA_ALGS + ECDH_ALGS + list(KEY_WRAP_OCTETS) + ["dir"])
def test_every_key_management_and_encryption_pair_decrypts_with_joserfc(joserfc_keys, signing_key, alg, enc):
    key, decrypting = recipient(alg, enc, joserfc_keys)
    token = encrypt(sign(CLAIMS, signing_key("ES256")[0]), key)
    assert_compact(token, 5)
    header = decrypt_and_verify(token, decrypting, alg, enc, signing_key)
    expected = {"alg": alg, "enc": enc, "cty": "JWT"}
    if key.kid:
        expected["kid"] = key.kid
    assert {name: header[name] for name in expected} == expected
    assert set(header) == set(expected) | extra_members(alg)
    encrypted_key = token.split(".")[1]
    assert (encrypted_key == "") == (alg in ("dir", "ECDH-ES"))  # RFC 7516 A.3, RFC 7518 4.6


@pytest.mark.parametrize("crv", ["P-256", "P-384", "P-521", "X25519"])
@pytest.mark.parametrize("alg", ECDH_ALGS)
def test_ecdh_on_every_curve_decrypts_with_joserfc(joserfc_keys, signing_key, alg, crv):
    key, decrypting = recipient(alg, "A256GCM", joserfc_keys, crv=crv)
    token = encrypt(sign(CLAIMS, signing_key("ES256")[0]), key)
    header = decrypt_and_verify(token, decrypting, alg, "A256GCM", signing_key)
    assert header["kid"] == "rp-enc-1"
    assert header["epk"]["crv"] == crv
    assert "d" not in header["epk"]  # the ephemeral key's public half only
    assert header["epk"]["x"] != decrypting.as_dict(private=False)["x"]


@pytest.mark.parametrize("alg", ["RSA-OAEP-256", "ECDH-ES", "A128GCMKW", "dir"])
def test_every_encryption_is_fresh(joserfc_keys, signing_key, alg):
    key, _ = recipient(alg, "A128GCM", joserfc_keys)
    signed = sign(CLAIMS, signing_key("ES256")[0])
    first, second = encrypt(signed, key).split("."), encrypt(signed, key).split(".")
    assert first[2] != second[2]  # content IV
    assert first[3] != second[3]  # ciphertext
    if alg != "dir":
        assert first[0] != second[0] or first[1] != second[1]  # a new CEK, wrapped or agreed


# Failures: ConfigurationError with our own message, never jwcrypto's ----------------------


def test_signing_failure_does_not_leak_jwcrypto():
    wrong = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    with pytest.raises(ConfigurationError) as caught:
        sign({"a": 1}, SigningKey("ES256", "kid-2", wrong))
    assert str(caught.value) == "Signing with ES256 key kid-2 failed: ValueError."
    assert wrong.export_private() not in str(caught.value)


@pytest.mark.parametrize("alg", ["none", "ES256K", "Ed448", "HS1", ""])
def test_signing_algorithms_outside_the_allow_list_fail(alg):
    key = oct_jwk(octets(64)) if alg in ("none", "HS1", "") else jwk.JWK.generate(kty="EC", crv="P-256")
    with pytest.raises(ConfigurationError) as caught:
        sign(CLAIMS, SigningKey(alg, "k", key))
    assert str(caught.value) == f"Signing with {alg} key k failed: KeyError."


def test_a_key_of_another_curve_never_signs(signing_key):
    es384, verifier = signing_key("ES384")
    assert jwt.decode(sign(CLAIMS, es384), verifier, algorithms=["ES384"])  # parsed key now holds P-384
    with pytest.raises(ConfigurationError) as caught:
        sign(CLAIMS, SigningKey("ES256", es384.kid, es384.jwk))
    assert str(caught.value) == f"Signing with ES256 key {es384.kid} failed: ValueError."
    assert str(caught.value.__cause__) == "the key does not fit the algorithm"  # for the traceback only


@pytest.mark.parametrize(("alg", "family"), [("RS256", "P-256"), ("EdDSA", "X25519"), ("HS256", "P-256")])
def test_a_key_of_another_type_never_signs(joserfc_keys, alg, family):
    with pytest.raises(ConfigurationError, match=rf"^Signing with {alg} key k failed: ValueError\.$"):
        sign(CLAIMS, SigningKey(alg, "k", to_jwcrypto(joserfc_keys[family])))


def test_a_public_key_cannot_sign(joserfc_keys):
    public = to_jwcrypto(joserfc_keys["P-256"], private=False)
    with pytest.raises(ConfigurationError, match=r"^Signing with ES256 key k failed: "):
        sign(CLAIMS, SigningKey("ES256", "k", public))


def test_a_short_hmac_secret_is_refused():
    # RFC 7518 3.2: a key of the same size as the hash output (or larger).
    with pytest.raises(ConfigurationError, match=r"^Signing with HS256 key k failed: ValueError\.$") as caught:
        sign(CLAIMS, SigningKey("HS256", "k", oct_jwk(octets(31))))
    assert str(caught.value.__cause__) == "the HMAC key is shorter than the hash output"
    # Exactly the hash size is enough.
    token = sign(CLAIMS, SigningKey("HS256", "k", oct_jwk(octets(32))))
    assert jwt.decode(token, OctKey.import_key(octets(32)), algorithms=["HS256"]).claims == CLAIMS


def test_claims_that_are_not_json_fail(signing_key):
    with pytest.raises(ConfigurationError, match=r"^Signing with ES256 key server-ES256 failed: TypeError\.$"):
        sign({**CLAIMS, "code": object()}, signing_key("ES256")[0])


@pytest.mark.parametrize(
    ("alg", "enc"),
    [
        ("RSA1_5", "A128CBC-HS256"),  # FAPI 1.0 Advanced 8.6.1
        ("PBES2-HS256+A128KW", "A128CBC-HS256"),
        ("none", "A128CBC-HS256"),
        ("RSA-OAEP", "none"),
        ("RSA-OAEP", "A128CBC+HS256"),
        ("RSA-OAEP", "RSA-OAEP"),  # a key management name where enc goes
    ],
)
def test_encryption_algorithms_outside_the_allow_lists_fail(joserfc_keys, alg, enc):
    public = to_jwcrypto(joserfc_keys["RSA"], private=False)
    with pytest.raises(ConfigurationError) as caught:
        encrypt("a.b.c", EncryptionKey(alg, enc, "rp", public))
    assert str(caught.value) == f"Encrypting with {alg}/{enc} failed: KeyError."


@pytest.mark.parametrize(
    ("alg", "enc", "key"),
    [
        ("RSA-OAEP-256", "A128GCM", ECKey.generate_key("P-256")),
        ("ECDH-ES", "A128GCM", RSAKey.generate_key(2048)),
        ("ECDH-ES", "A128GCM", OKPKey.generate_key("Ed25519")),  # a signing curve
        ("A128KW", "A128GCM", OctKey.import_key(octets(32))),  # RFC 7518 4.4: exactly 128 bits
        ("A256GCMKW", "A128GCM", OctKey.import_key(octets(16))),
        ("dir", "A256CBC-HS512", OctKey.import_key(octets(32))),  # RFC 7518 5.2.2: 64 octets
        ("A128KW", "A128GCM", ECKey.generate_key("P-256")),
    ],
    ids=["ec-for-rsa", "rsa-for-ecdh", "ed25519-for-ecdh", "long-kw", "short-gcmkw", "short-dir", "ec-for-kw"],
)
def test_a_recipient_key_that_does_not_fit_fails(alg, enc, key):
    public = to_jwcrypto(key, private=isinstance(key, OctKey))  # a secret has no public half
    with pytest.raises(ConfigurationError, match=rf"^Encrypting with {alg}/{enc} failed: \w+\.$") as caught:
        encrypt("a.b.c", EncryptionKey(alg, enc, "rp", public))
    assert isinstance(caught.value.__cause__, Exception)  # the cause stays for debugging, not in the message
    if alg.startswith("RSA-OAEP"):
        assert str(caught.value) == f"Encrypting with {alg}/{enc} failed: ValueError."
        assert str(caught.value.__cause__) == "the key does not fit the algorithm"


def test_a_non_ascii_payload_is_not_encrypted(joserfc_keys):
    key, _ = recipient("RSA-OAEP-256", "A128GCM", joserfc_keys)
    with pytest.raises(
        ConfigurationError, match=r"^Encrypting with RSA-OAEP-256/A128GCM failed: UnicodeEncodeError\.$"
    ):
        encrypt("ä.b.c", key)
