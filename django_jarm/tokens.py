"""The only module that builds JARM response JWTs: JWS, and nested JWS-in-JWE."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from jwcrypto import jwe, jws
from jwcrypto.common import json_encode

from .client_keys import EncryptionKey
from .exceptions import ConfigurationError
from .keys import SigningKey

#: Response parameters whose values are numbers (JARM 2.1: "numerical values ... as JSON numbers").
NUMERIC_PARAMETERS = frozenset({"expires_in"})

#: Claims owned by the JWT itself; response parameters of these names are never copied over.
JWT_CLAIMS = frozenset({"iss", "aud", "exp", "iat"})


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


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    """Compact JWS of ``claims`` with ``key``; the header carries ``alg`` and ``kid``."""
    try:
        token = jws.JWS(json_encode(claims).encode("utf-8"))
        token.allowed_algs = [key.alg]
        token.add_signature(key.jwk, alg=key.alg, protected=json_encode({"alg": key.alg, "kid": key.kid}))
        return str(token.serialize(compact=True))
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
        token = jwe.JWE(signed.encode("ascii"), protected=json_encode(header))
        token.allowed_algs = [key.alg, key.enc]
        token.add_recipient(key.jwk)
        return str(token.serialize(compact=True))
    except Exception as exc:
        reason = type(exc).__name__
        raise ConfigurationError(f"Encrypting with {key.alg}/{key.enc} failed: {reason}.") from exc
