"""Server signing keys: generation, encryption at rest, caching and the published JWK Set.

Parsed keys are cached per process by ``kid`` (a kid names one immutable key). Which key is
active for an algorithm, and which keys are published, is a small snapshot re-read from the
database when ``KEY_CACHE_SECONDS`` have passed or when another process announces a change
through Django's cache (a generation counter bumped on every key change).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from jwcrypto import jwe, jwk
from jwcrypto.common import JWException, base64url_encode, json_encode
from oauth2_provider.settings import oauth2_settings

from .conf import ASYMMETRIC_SIGNING_ALGS, SYMMETRIC_SIGNING_ALGS, jarm_settings
from .exceptions import ConfigurationError, KeyDecryptionError
from .models import ServerKey, hmac_secret_problem

try:  # DOT master moved its helpers to oauth2_provider.core.
    from oauth2_provider.core.utils import jwk_from_pem  # type: ignore[import-not-found]
except ImportError:  # pragma: no branch
    from oauth2_provider.utils import jwk_from_pem

logger = logging.getLogger(__name__)

GENERATION_CACHE_KEY = "django_jarm:server-keys:generation"
_PARSED_KEYS_MAX = 256

#: Key type and parameters generated for each JWS algorithm.
KEY_PARAMS: dict[str, dict[str, Any]] = {
    **{alg: {"kty": "RSA", "size": 2048} for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": {"kty": "EC", "crv": "P-256"},
    "ES384": {"kty": "EC", "crv": "P-384"},
    "ES512": {"kty": "EC", "crv": "P-521"},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
}


@dataclass(frozen=True)
class SigningKey:
    """A parsed private key ready to sign, with the header values it signs under."""

    alg: str
    kid: str
    jwk: jwk.JWK = field(repr=False)


# Encryption at rest -------------------------------------------------------------------


def _key_encryption_secret() -> str:
    secret = jarm_settings.KEY_ENCRYPTION_SECRET
    return str(secret) if secret else str(settings.SECRET_KEY)


_storage_keys: dict[str, jwk.JWK] = {}


def _storage_key(secret: str) -> jwk.JWK:
    """The A256GCM key protecting stored private keys, derived from ``secret`` with HKDF."""
    key = _storage_keys.get(secret)
    if key is None:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"django_jarm server keys",
            info=b"django_jarm key encryption v1",
        ).derive(secret.encode("utf-8"))
        key = jwk.JWK(kty="oct", k=base64url_encode(derived))
        _storage_keys[secret] = key
    return key


def encrypt_private_key(key: jwk.JWK) -> str:
    """The private ``key`` as a compact JWE (dir, A256GCM) under the storage key."""
    storage_key = _storage_key(_key_encryption_secret())
    token = jwe.JWE(
        key.export_private().encode("utf-8"),
        protected=json_encode({"alg": "dir", "enc": "A256GCM", "kid": storage_key.thumbprint()}),
    )
    token.add_recipient(storage_key)
    return str(token.serialize(compact=True))


def decrypt_private_key(token: str, *, kid: str = "") -> jwk.JWK:
    storage_key = _storage_key(_key_encryption_secret())
    try:
        envelope = jwe.JWE()
        envelope.deserialize(token, key=storage_key)
        return jwk.JWK.from_json(envelope.payload.decode("utf-8"))
    except (JWException, ValueError) as exc:
        raise KeyDecryptionError(
            f"Server key {kid or '?'} cannot be decrypted: JARM['KEY_ENCRYPTION_SECRET'] (or SECRET_KEY) "
            "is not the one it was stored with."
        ) from exc


# Generation and import ----------------------------------------------------------------


def public_jwk_dict(key: jwk.JWK, *, alg: str, kid: str) -> dict[str, Any]:
    """Public members of ``key`` plus ``kid``, ``alg`` and ``use``; never private members."""
    data: dict[str, Any] = json.loads(key.export_public())
    data.update({"kid": kid, "alg": alg, "use": "sig"})
    return data


def _key_matches_alg(key: jwk.JWK, alg: str) -> bool:
    params = KEY_PARAMS[alg]
    if key.get("kty") != params["kty"]:
        return False
    return "crv" not in params or key.get("crv") == params["crv"]


def _store(key: jwk.JWK, alg: str, status: str | None) -> ServerKey:
    if alg not in ASYMMETRIC_SIGNING_ALGS:
        raise ConfigurationError(
            f"Server keys sign with one of {', '.join(ASYMMETRIC_SIGNING_ALGS)}, not {alg!r}."
        )
    if not _key_matches_alg(key, alg):
        raise ConfigurationError(f"A {key.get('kty')} key cannot sign {alg}.")
    kid = key.thumbprint()
    with transaction.atomic():
        if status is None:
            has_active = ServerKey.objects.select_for_update().active().filter(alg=alg).exists()
            status = ServerKey.Status.NEXT if has_active else ServerKey.Status.ACTIVE
        server_key = ServerKey.objects.create(
            kid=kid,
            alg=alg,
            kty=key.get("kty"),
            crv=key.get("crv") or "",
            status=status,
            public_jwk=public_jwk_dict(key, alg=alg, kid=kid),
            private_jwk_encrypted=encrypt_private_key(key),
            activated=timezone.now() if status == ServerKey.Status.ACTIVE else None,
        )
        transaction.on_commit(bump_generation)
    logger.info("JARM server key created: kid=%s alg=%s status=%s", kid, alg, status)
    return server_key


def generate_server_key(alg: str, *, status: str | None = None, rsa_size: int = 2048) -> ServerKey:
    """Create a key for ``alg``: active when no key is active for ``alg``, else ``next``."""
    if alg not in KEY_PARAMS:
        raise ConfigurationError(f"Cannot generate a key for {alg!r}; choose one of {', '.join(KEY_PARAMS)}.")
    params = dict(KEY_PARAMS[alg])
    if params["kty"] == "RSA":
        params["size"] = max(rsa_size, 2048)
    return _store(jwk.JWK.generate(**params), alg, status)


def import_server_key(
    pem: bytes, alg: str, *, password: bytes | None = None, status: str | None = None
) -> ServerKey:
    """Store the private key in ``pem`` for ``alg``."""
    try:
        key = jwk.JWK.from_pem(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("The PEM does not hold a private key that can be read.") from exc
    if not key.has_private:
        raise ConfigurationError("The PEM holds a public key; a signing key needs its private part.")
    if key.get("kty") == "RSA" and key._get_public_key().key_size < 2048:
        raise ConfigurationError("RSA keys must have at least 2048 bits.")
    return _store(key, alg, status)


# Cache --------------------------------------------------------------------------------


def bump_generation() -> None:
    """Tell every process that the server keys changed."""
    try:
        cache.incr(GENERATION_CACHE_KEY)
    except ValueError:
        cache.set(GENERATION_CACHE_KEY, 1, None)
    _store_snapshot(None)


def _current_generation() -> Any:
    return cache.get(GENERATION_CACHE_KEY, 0)


@dataclass(frozen=True)
class _Snapshot:
    generation: Any
    loaded_at: float
    #: alg -> (kid, encrypted private key) of the active key.
    active: dict[str, tuple[str, str]]
    published: list[dict[str, Any]]


_lock = threading.Lock()
_snapshot: _Snapshot | None = None
_parsed: OrderedDict[str, jwk.JWK] = OrderedDict()


def _store_snapshot(value: _Snapshot | None) -> None:
    global _snapshot
    _snapshot = value


def _load_snapshot() -> _Snapshot:
    snapshot = _snapshot
    generation = _current_generation()
    now = time.monotonic()
    if (
        snapshot is not None
        and snapshot.generation == generation
        and now - snapshot.loaded_at < jarm_settings.KEY_CACHE_SECONDS
    ):
        return snapshot
    active: dict[str, tuple[str, str]] = {}
    published: list[dict[str, Any]] = []
    rows = ServerKey.objects.published().values_list(
        "kid", "alg", "status", "public_jwk", "private_jwk_encrypted"
    )
    for kid, alg, status, public, encrypted in rows:
        published.append(public)
        if status == ServerKey.Status.ACTIVE:
            active[alg] = (kid, encrypted)
    snapshot = _Snapshot(generation=generation, loaded_at=now, active=active, published=published)
    _store_snapshot(snapshot)
    return snapshot


def clear_caches() -> None:
    """Forget everything this process cached about server keys."""
    with _lock:
        _parsed.clear()
    _store_snapshot(None)


def _parsed_key(kid: str, encrypted: str) -> jwk.JWK:
    with _lock:
        key = _parsed.get(kid)
        if key is not None:
            _parsed.move_to_end(kid)
            return key
    key = decrypt_private_key(encrypted, kid=kid)
    with _lock:
        _parsed[kid] = key
        while len(_parsed) > _PARSED_KEYS_MAX:
            _parsed.popitem(last=False)
    return key


# DOT's OIDC keys ------------------------------------------------------------------------


def _dot_rsa_keys() -> list[jwk.JWK]:
    """DOT's OIDC RSA keys, the active one first (parsed once per process by DOT's cache)."""
    if not oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        return []
    pems = [oauth2_settings.OIDC_RSA_PRIVATE_KEY, *oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE]
    return [jwk_from_pem(pem) for pem in pems]


def _dot_signing_key() -> SigningKey | None:
    keys = _dot_rsa_keys()
    if not keys:
        return None
    return SigningKey(alg="RS256", kid=keys[0].thumbprint(), jwk=keys[0])


# Public API ---------------------------------------------------------------------------


def published_jwks() -> dict[str, list[dict[str, Any]]]:
    """The server's JWK Set: DOT's OIDC keys (as DOT publishes them) and our published keys."""
    keys: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key in _dot_rsa_keys():
        kid = key.thumbprint()
        keys.append(public_jwk_dict(key, alg="RS256", kid=kid))
        seen.add(kid)
    for public in _load_snapshot().published:
        if public["kid"] not in seen:
            keys.append(dict(public))
            seen.add(public["kid"])
    return {"keys": keys}


def available_signing_algs() -> list[str]:
    """Enabled algorithms this server can sign with right now (HS* when enabled)."""
    snapshot = _load_snapshot()
    has_dot_key = bool(oauth2_settings.OIDC_RSA_PRIVATE_KEY)
    available = []
    for alg in jarm_settings.signing_algs:
        if alg in SYMMETRIC_SIGNING_ALGS or alg in snapshot.active or (alg == "RS256" and has_dot_key):
            available.append(alg)
    return available


def get_signing_key(alg: str, application: Any) -> SigningKey:
    """The key to sign ``application``'s response with ``alg``.

    Raises :class:`ConfigurationError` (with a reason safe to log) when there is none.
    """
    if alg not in jarm_settings.signing_algs:
        raise ConfigurationError(f"{alg} is not enabled in JARM['SIGNING_ALGS_SUPPORTED'] (or the profile).")
    if alg in SYMMETRIC_SIGNING_ALGS:
        return _client_secret_key(alg, application)
    active = _load_snapshot().active.get(alg)
    if active is not None:
        kid, encrypted = active
        return SigningKey(alg=alg, kid=kid, jwk=_parsed_key(kid, encrypted))
    if alg == "RS256":
        dot_key = _dot_signing_key()
        if dot_key is not None:
            return dot_key
    raise ConfigurationError(
        f"No active server key for {alg}; run `manage.py jarm_keys generate --alg {alg}`."
    )


def _client_secret_key(alg: str, application: Any) -> SigningKey:
    # OpenID Connect Core 10.1: the MAC key is the octets of the UTF-8 client_secret.
    problem = hmac_secret_problem(application, alg)
    if problem:
        raise ConfigurationError(problem)
    secret = application.client_secret.encode("utf-8")
    key = jwk.JWK(kty="oct", k=base64url_encode(secret))
    # RFC 7638 thumbprint of the secret's JWK: identifies the secret version, reveals nothing
    # a signature made with it does not.
    return SigningKey(alg=alg, kid=key.thumbprint(), jwk=key)
