"""The only module that builds JARM response JWTs: JWS, and nested JWS-in-JWE.

The tokens are built on keys that are already parsed, and serialized here in the compact form
(RFC 7515 7.1, RFC 7516 7.1). That is all jwcrypto's ``JWS``/``JWE`` objects would do for one
signature or one recipient, without the copies of their header registries and, for AES-GCM key
wrapping and ECDH-ES, without their second encryption of the content. A parsed ``JWK`` keeps its
``cryptography`` key object, so a key cached by :mod:`django_jarm.keys` or
:mod:`django_jarm.client_keys` is never rebuilt here.

jwcrypto's algorithm objects (``jwcrypto.jwa``) check each key once and name the parameters
(padding, hash, curve); the per-response work on a server or client RSA/EC key is then the same
``cryptography`` call those objects make, prepared once per key. The content encryption (RFC
7518 5.2 and 5.3) is computed here with ``cryptography``'s AES and the standard library's HMAC:
one call each, where the algorithm objects build a cipher, a padder and an HMAC object per
response. It runs in the middle of an authorization request, where every extra layer of code
costs several times what it costs in a loop (``benchmarks/``).
"""

from __future__ import annotations

import binascii
import hmac
import json
import os
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwcrypto import jwk
from jwcrypto.common import base64url_decode
from jwcrypto.jwa import JWA

from .client_keys import EncryptionKey
from .conf import ALL_ENCRYPTION_ALGS, ALL_ENCRYPTION_ENCS, ALL_SIGNING_ALGS
from .exceptions import ConfigurationError
from .keys import SigningKey
from .validation import ENC_KEY_OCTETS

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

#: RFC 7518 5.2.3-5.2.5: the HMAC hash of each AES_CBC_HMAC_SHA2 ``enc``. Its content encryption
#: key is the MAC key, then the AES key, of half its length each; the tag is as long as either.
#: Every other ``enc`` of the allow-list is AES GCM (RFC 7518 5.3): a 96-bit IV, a 128-bit tag.
CBC_HMAC_HASH = {"A128CBC-HS256": "sha256", "A192CBC-HS384": "sha384", "A256CBC-HS512": "sha512"}

# The allow-lists: one stateless algorithm object per name in conf's lists, which never hold
# "none" or RSA1_5 (FAPI 1.0 Advanced 8.6.1). A name outside them cannot be signed or encrypted.
_SIGNERS = {alg: JWA.signing_alg("EdDSA" if alg == "Ed25519" else alg) for alg in ALL_SIGNING_ALGS}
_KEY_MANAGEMENT = {alg: JWA.keymgmt_alg(alg) for alg in ALL_ENCRYPTION_ALGS}
#: The content encryption key length of each ``enc`` of the allow-list (a KeyError for any other).
_CEK_OCTETS = {enc: ENC_KEY_OCTETS[enc] for enc in ALL_ENCRYPTION_ENCS}


_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: jwcrypto's ``json_encode``: compact, keys sorted, ASCII; one encoder instead of one per call.
_json_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class CompactJWT(str):
    """A compact JWS or JWE built by this module: BASE64URL segments joined by dots (RFC 7515
    7.1, RFC 7516 7.1), so every character is "unreserved" (RFC 3986 2.3) and none ever needs
    escaping in a URL. Only :func:`sign` and :func:`encrypt` make them; response modes rely on it.
    """

    __slots__ = ()


def b64url(data: bytes) -> str:
    """BASE64URL(data) without padding (RFC 7515 2); jwcrypto's ``base64url_encode`` for bytes."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


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
    return b64url(_json_encode({"alg": alg, "kid": kid}).encode("ascii"))


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
#: Wraps a content encryption key to one recipient key: CEK octets -> JWE Encrypted Key octets.
KeyWrap = Callable[[bytes], bytes]

#: Prepared signatures of the server's RSA and EC keys (``_PREPARED``) and prepared key wrapping
#: to clients' RSA keys (``_WRAPS``), by (identity of the parsed key, alg). Each entry holds its
#: key, so an id is never taken for another key's while the entry lives.
_PREPARED: dict[tuple[int, str], tuple[jwk.JWK, Signature]] = {}
_PREPARED_MAX = 64
_WRAPS: dict[tuple[int, str], tuple[jwk.JWK, KeyWrap | None]] = {}
#: A process encrypts to many clients' keys: room for every client of a large deployment.
_WRAPS_MAX = 4096


def _memo(memo: dict[tuple[int, str], tuple[jwk.JWK, Any]], limit: int, parsed: jwk.JWK, alg: str, prepare: Any) -> Any:
    """``prepare()`` for the parsed key ``parsed`` and ``alg``, once while it stays in ``memo``.

    Parsed keys are never changed in place (django_jarm parses a new ``JWK`` for new key
    material), so what was prepared from one stays true of it. Up to ``limit`` preparations are
    kept, retired keys' among them until the memo is emptied; they are used only when the
    request path hands their key in again.
    """
    found = memo.get((id(parsed), alg))
    if found is not None and found[0] is parsed:
        return found[1]
    prepared = prepare()
    if len(memo) >= limit:
        memo.clear()
    memo[(id(parsed), alg)] = (parsed, prepared)
    return prepared


def _prepare(key: SigningKey) -> Signature:
    """The signature function of ``key``: checked, and its ``cryptography`` key taken, once.

    For RSA and EC keys, it is what the jwcrypto algorithm object's ``sign`` does per call
    (the key's use and key_ops checks, the key lookup, the padding and hash objects), done once;
    the signing itself is the same call with the same parameters. HMAC keys (a client's secret,
    new for every request) and EdDSA go through the algorithm object each time.
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
    signature: Signature = _memo(_PREPARED, _PREPARED_MAX, key.jwk, key.alg, lambda: _prepare(key))
    return signature


def sign(claims: dict[str, Any], key: SigningKey) -> CompactJWT:
    """Compact JWS of ``claims`` with ``key``; the header carries ``alg`` and ``kid``."""
    try:
        signature = _signature_of(key)
        # RFC 7515 5.1: the signature covers ASCII(BASE64URL(header) || '.' || BASE64URL(payload)).
        signing_input = _encoded_signing_header(key.alg, key.kid) + "." + b64url(_json_encode(claims).encode("ascii"))
        return CompactJWT(signing_input + "." + b64url(signature(signing_input.encode("ascii"))))
    except Exception as exc:
        # jwcrypto fails in many ways (JWException, ValueError, AttributeError on a key that
        # does not fit the algorithm): none of them, nor their messages, cross this boundary.
        raise ConfigurationError(f"Signing with {key.alg} key {key.kid} failed: {type(exc).__name__}.") from exc


def _prepare_wrap(key: EncryptionKey) -> KeyWrap | None:
    """RSAES-OAEP key wrapping to ``key`` (RFC 7518 4.3), checked once; ``None`` when jwcrypto's
    algorithm object does not name its padding (then its own ``wrap()`` runs per response).

    What jwcrypto's RSA algorithm object does per call (the key type, use and key_ops checks,
    the public key lookup) done once; the encryption itself is the same call with its padding.
    """
    padding = getattr(_KEY_MANAGEMENT[key.alg], "padfn", None)
    if padding is None:
        return None
    if key.jwk.get("kty") != "RSA":
        raise ValueError("the key does not fit the algorithm")
    public = key.jwk.get_op_key("wrapKey")

    def rsa_wrap(cek: bytes) -> bytes:
        encrypted_key: bytes = public.encrypt(cek, padding)
        return encrypted_key

    return rsa_wrap


@lru_cache(maxsize=256)
def _encoded_encryption_header(alg: str, enc: str, kid: str | None) -> str:
    """BASE64URL of a JWE protected header without per-message parameters (RSA key wrapping)."""
    return b64url(_json_encode(_encryption_header(alg, enc, kid)).encode("ascii"))


def _encryption_header(alg: str, enc: str, kid: str | None) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": alg, "enc": enc, "cty": "JWT"}
    if kid:
        header["kid"] = kid
    return header


def encrypt_content(enc: str, cek: bytes, aad: bytes, plaintext: bytes) -> tuple[bytes, bytes, bytes]:
    """RFC 7518 5.2.2.1 (AES_CBC_HMAC_SHA2) or 5.3 (AES GCM): the IV, the ciphertext, the tag."""
    if len(cek) != _CEK_OCTETS[enc]:
        raise ValueError("the content encryption key does not fit the algorithm")
    digest = CBC_HMAC_HASH.get(enc)
    if digest is not None:
        octets = len(cek) // 2
        iv = os.urandom(16)
        pad = 16 - len(plaintext) % 16  # PKCS #7 to the AES block size
        encryptor = Cipher(algorithms.AES(cek[octets:]), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(plaintext + bytes((pad,)) * pad) + encryptor.finalize()
        # AL: the number of bits in the AAD as a 64-bit big-endian integer.
        length = (len(aad) * 8).to_bytes(8, "big")
        tag = hmac.digest(cek[:octets], aad + iv + ciphertext + length, digest)[:octets]
        return iv, ciphertext, tag
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, aad)  # the ciphertext, then the 128-bit tag
    return iv, sealed[:-16], sealed[-16:]


def encrypt(signed: str, key: EncryptionKey) -> CompactJWT:
    """Nested JWT: the signed response encrypted to ``key`` (JARM 2.2: sign, then encrypt).

    The header carries ``cty: "JWT"`` (RFC 7519 5.2) and the recipient key's ``kid``.
    """
    try:
        key_management = _KEY_MANAGEMENT[key.alg]
        cek_octets = _CEK_OCTETS[key.enc]
        plaintext = signed.encode("ascii")
        # RFC 7516 5.1 steps 2-6: a fresh content encryption key, wrapped to (or, for dir and
        # ECDH-ES, agreed with) the recipient's key.
        wrap: KeyWrap | None = None
        if key.alg.startswith("RSA-OAEP"):
            wrap = _memo(_WRAPS, _WRAPS_MAX, key.jwk, key.alg, lambda: _prepare_wrap(key))
        if wrap is not None:
            cek = os.urandom(cek_octets)
            encrypted_key = wrap(cek)
            protected = _encoded_encryption_header(key.alg, key.enc, key.kid)
        else:
            header = _encryption_header(key.alg, key.enc, key.kid)
            wrapped = key_management.wrap(key.jwk, cek_octets * 8, None, header)
            # ECDH-ES's "epk", AES-GCM key wrapping's "iv" and "tag": the compact serialization
            # has only the protected header to carry them (RFC 7516 7.1), so they are protected too.
            for name, value in wrapped.get("header", {}).items():
                if name in header:
                    raise ValueError("the key management algorithm rewrote a header parameter")
                header[name] = value
            protected = b64url(_json_encode(header).encode("ascii"))
            cek, encrypted_key = wrapped["cek"], wrapped.get("ek", b"")
        # RFC 7516 5.1 steps 14-15: the protected header, as ASCII, is the additional authenticated data.
        iv, ciphertext, tag = encrypt_content(key.enc, cek, protected.encode("ascii"), plaintext)
        return CompactJWT(".".join((protected, b64url(encrypted_key), b64url(iv), b64url(ciphertext), b64url(tag))))
    except Exception as exc:
        reason = type(exc).__name__
        raise ConfigurationError(f"Encrypting with {key.alg}/{key.enc} failed: {reason}.") from exc
