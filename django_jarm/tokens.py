"""The only module that builds JARM response JWTs: JWS, and nested JWS-in-JWE.

The tokens are built with jwcrypto's algorithm objects (``jwcrypto.jwa``) on keys that are
already parsed, and serialized here in the compact form (RFC 7515 7.1, RFC 7516 7.1). That is
all jwcrypto's ``JWS``/``JWE`` objects would do for one signature or one recipient, without the
copies of their header registries and, for AES-GCM key wrapping and ECDH-ES, without their
second encryption of the content. A parsed ``JWK`` keeps its ``cryptography`` key object, so a
key cached by :mod:`django_jarm.keys` or :mod:`django_jarm.client_keys` is never rebuilt here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk
from jwcrypto.common import base64url_decode, base64url_encode, json_encode
from jwcrypto.jwa import JWA

from .client_keys import EncryptionKey
from .conf import ALL_ENCRYPTION_ALGS, ALL_ENCRYPTION_ENCS, ALL_SIGNING_ALGS
from .exceptions import ConfigurationError
from .keys import SigningKey

#: Response parameters whose values are numbers (JARM 2.1: "numerical values ... as JSON numbers").
NUMERIC_PARAMETERS = frozenset({"expires_in"})

#: Claims owned by the JWT itself; response parameters of these names are never copied over.
JWT_CLAIMS = frozenset({"iss", "aud", "exp", "iat"})

#: The key type and curve each signing algorithm signs with (RFC 7518 3.2-3.5, RFC 8037 3.1).
#: Checked before signing: a parsed EC key keeps its first curve, so jwcrypto alone would sign
#: ES256 with a P-384 key it had already used for ES384.
SIGNING_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "HS256": ("oct", None),
    "HS384": ("oct", None),
    "HS512": ("oct", None),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
    # RFC 9864: the fully specified name of EdDSA with Ed25519; the same signature.
    "Ed25519": ("OKP", "Ed25519"),
}

# The allow-lists: one stateless algorithm object per name in conf's lists, which never hold
# "none" or RSA1_5 (FAPI 1.0 Advanced 8.6.1). A name outside them cannot be signed or encrypted.
_SIGNERS = {alg: JWA.signing_alg("EdDSA" if alg == "Ed25519" else alg) for alg in ALL_SIGNING_ALGS}
_KEY_MANAGEMENT = {alg: JWA.keymgmt_alg(alg) for alg in ALL_ENCRYPTION_ALGS}
_CONTENT_ENCRYPTION = {enc: JWA.encryption_alg(enc) for enc in ALL_ENCRYPTION_ENCS}


def _json_value(name: str, value: str) -> Any:
    if name in NUMERIC_PARAMETERS:
        try:
            return int(value)
        except ValueError:
            return value
    return value


def response_claims(
    params: Iterable[tuple[str, str]],
    *,
    issuer: str,
    client_id: str,
    lifetime: int,
    include_iat: bool = True,
    now: int | None = None,
) -> dict[str, Any]:
    """The claims of a JARM response: ``iss``, ``aud``, ``exp`` (``iat``) and the response parameters."""
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {"iss": issuer, "aud": client_id, "exp": issued_at + lifetime}
    if include_iat:
        claims["iat"] = issued_at
    for name, value in params:
        if name not in JWT_CLAIMS:
            claims[name] = _json_value(name, value)
    return claims


@lru_cache(maxsize=256)
def _encoded_signing_header(alg: str, kid: str) -> str:
    """BASE64URL of the JWS protected header; keyed by two immutable strings, bounded."""
    return base64url_encode(json_encode({"alg": alg, "kid": kid}))


#: RFC 7518 3.2: an HMAC key at least as long as the hash output (older jwcrypto does not check).
HMAC_MIN_KEY_OCTETS = {"HS256": 32, "HS384": 48, "HS512": 64}


def _check_signing_key(key: SigningKey) -> None:
    kty, crv = SIGNING_KEY_TYPES[key.alg]
    if key.jwk.get("kty") != kty or (crv is not None and key.jwk.get("crv") != crv):
        raise ValueError("the key does not fit the algorithm")
    minimum = HMAC_MIN_KEY_OCTETS.get(key.alg)
    if minimum is not None and len(base64url_decode(key.jwk.get("k") or "")) < minimum:
        raise ValueError("the HMAC key is shorter than the hash output")


Signature = Callable[[bytes], bytes]

#: Prepared signatures of the server's RSA and EC keys, by (identity of the parsed key, alg).
#: Each entry holds its key, so an id is never taken for another key's while the entry lives.
_PREPARED: dict[tuple[int, str], tuple[jwk.JWK, Signature]] = {}
_PREPARED_MAX = 64


def _prepare(key: SigningKey) -> Signature:
    """The signature function of ``key``: checked, and its ``cryptography`` key taken, once.

    For RSA and EC keys, it is what the jwcrypto algorithm object's ``sign`` does per call
    (the key's use and key_ops checks, the key lookup, the padding and hash objects), done once;
    the signing itself is the same call with the same parameters. HMAC keys (a client's secret,
    new for every request) and EdDSA go through the algorithm object each time.

    Parsed keys are never changed in place (django_jarm parses a new ``JWK`` for new key
    material), so what was prepared from one stays true of it. Up to ``_PREPARED_MAX``
    preparations are kept, retired keys' among them until the memo is emptied; they sign only
    when the request path hands their ``SigningKey`` in again.
    """
    signer = _SIGNERS[key.alg]
    _check_signing_key(key)
    kty = key.jwk.get("kty")
    # jwcrypto's RSA and EC algorithm objects keep their parameters as attributes; any other
    # (or a jwcrypto that names them otherwise) signs through the object's own sign().
    hashfn = getattr(signer, "hashfn", None)
    padding = getattr(signer, "padfn", None)
    curve = getattr(signer, "curve", None)
    if kty == "RSA" and padding is not None and hashfn is not None:
        rsa_key = key.jwk.get_op_key("sign")

        def rsa_signature(data: bytes) -> bytes:
            signature: bytes = rsa_key.sign(data, padding, hashfn)
            return signature

        return rsa_signature
    if kty == "EC" and curve is not None and hashfn is not None:
        ec_key = key.jwk.get_op_key("sign", curve)
        ecdsa = ec.ECDSA(hashfn)
        # RFC 7518 3.4: R and S as big-endian octet strings of the curve's size, concatenated.
        size = (ec_key.key_size + 7) // 8

        def ec_signature(data: bytes) -> bytes:
            r, s = decode_dss_signature(ec_key.sign(data, ecdsa))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")

        return ec_signature
    parsed = key.jwk
    return lambda data: signer.sign(parsed, data)


def _signature_of(key: SigningKey) -> Signature:
    if key.alg in HMAC_MIN_KEY_OCTETS:
        return _prepare(key)
    found = _PREPARED.get((id(key.jwk), key.alg))
    if found is not None and found[0] is key.jwk:
        return found[1]
    signature = _prepare(key)
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    _PREPARED[(id(key.jwk), key.alg)] = (key.jwk, signature)
    return signature


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    """Compact JWS of ``claims`` with ``key``; the header carries ``alg`` and ``kid``."""
    try:
        signature = _signature_of(key)
        # RFC 7515 5.1: the signature covers ASCII(BASE64URL(header) || '.' || BASE64URL(payload)).
        signing_input = _encoded_signing_header(key.alg, key.kid) + "." + base64url_encode(json_encode(claims))
        return signing_input + "." + base64url_encode(signature(signing_input.encode("ascii")))
    except Exception as exc:
        # jwcrypto fails in many ways (JWException, ValueError, AttributeError on a key that
        # does not fit the algorithm): none of them, nor their messages, cross this boundary.
        raise ConfigurationError(f"Signing with {key.alg} key {key.kid} failed: {type(exc).__name__}.") from exc


def encrypt(signed: str, key: EncryptionKey) -> str:
    """Nested JWT: the signed response encrypted to ``key`` (JARM 2.2: sign, then encrypt).

    The header carries ``cty: "JWT"`` (RFC 7519 5.2) and the recipient key's ``kid``.
    """
    header: dict[str, Any] = {"alg": key.alg, "enc": key.enc, "cty": "JWT"}
    if key.kid:
        header["kid"] = key.kid
    try:
        key_management = _KEY_MANAGEMENT[key.alg]
        content_encryption = _CONTENT_ENCRYPTION[key.enc]
        plaintext = signed.encode("ascii")
        # RFC 7516 5.1 steps 2-6: a fresh content encryption key, wrapped to (or, for dir and
        # ECDH-ES, agreed with) the recipient's key.
        wrapped = key_management.wrap(key.jwk, content_encryption.wrap_key_size, None, header)
        # ECDH-ES's "epk", AES-GCM key wrapping's "iv" and "tag": the compact serialization has
        # only the protected header to carry them (RFC 7516 7.1), so they are protected too.
        for name, value in wrapped.get("header", {}).items():
            if name in header:
                raise ValueError("the key management algorithm rewrote a header parameter")
            header[name] = value
        protected = base64url_encode(json_encode(header))
        # RFC 7516 5.1 steps 14-15: the protected header, as ASCII, is the additional authenticated data.
        iv, ciphertext, tag = content_encryption.encrypt(wrapped["cek"], protected.encode("ascii"), plaintext)
        encrypted_key = base64url_encode(wrapped.get("ek", b""))
        return ".".join(
            (protected, encrypted_key, base64url_encode(iv), base64url_encode(ciphertext), base64url_encode(tag))
        )
    except Exception as exc:
        reason = type(exc).__name__
        raise ConfigurationError(f"Encrypting with {key.alg}/{key.enc} failed: {reason}.") from exc
