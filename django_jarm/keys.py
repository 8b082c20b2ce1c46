"""Server signing keys: generation, encryption at rest, caching and the published JWK Set.

Parsed keys are cached per process by ``kid`` (a kid names one immutable key). Which key is
active for an algorithm, and which keys are published, is a small snapshot re-read from the
database when ``KEY_CACHE_SECONDS`` have passed or when another process announces a change
through Django's cache (a generation counter bumped on every key change).
"""

from __future__ import annotations

import datetime
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
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from jwcrypto import jwe, jwk
from jwcrypto.common import JWException, base64url_encode, json_encode
from oauth2_provider.settings import oauth2_settings

from . import cache as shared_cache
from .conf import SYMMETRIC_SIGNING_ALGS, jarm_settings
from .exceptions import ConfigurationError, KeyDecryptionError
from .models import ServerKey, hmac_secret_problem

try:  # DOT master moved its helpers to oauth2_provider.core.
    from oauth2_provider.core.utils import jwk_from_pem
except ImportError:  # pragma: no branch
    from oauth2_provider.utils import jwk_from_pem

logger = logging.getLogger(__name__)

GENERATION_CACHE_KEY = shared_cache.GENERATION_KEYS[0]
_PARSED_KEYS_MAX = 256

#: Key type and parameters generated for each JWS algorithm.
KEY_PARAMS: dict[str, dict[str, Any]] = {
    **{alg: {"kty": "RSA", "size": 2048} for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": {"kty": "EC", "crv": "P-256"},
    "ES384": {"kty": "EC", "crv": "P-384"},
    "ES512": {"kty": "EC", "crv": "P-521"},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
}

#: RFC 9864: ``Ed25519`` is the fully specified name of EdDSA with an Ed25519 key. Clients may
#: register either; both sign with the (one) active EdDSA server key, under the client's name.
SERVER_KEY_ALG = {"Ed25519": "EdDSA"}


@dataclass(frozen=True)
class SigningKey:
    """A parsed private key ready to sign, with the header values it signs under."""

    alg: str
    kid: str
    jwk: jwk.JWK = field(repr=False)


# Encryption at rest -------------------------------------------------------------------


def _key_encryption_secrets() -> list[str]:
    """The secret new keys are encrypted under, then the older ones still accepted for reading."""
    secret = jarm_settings.KEY_ENCRYPTION_SECRET
    if secret:
        return [str(secret), *map(str, jarm_settings.KEY_ENCRYPTION_SECRET_FALLBACKS)]
    return [str(settings.SECRET_KEY), *map(str, getattr(settings, "SECRET_KEY_FALLBACKS", []))]


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
    """The private ``key`` as a compact JWE (dir, A256GCM) under the current storage key."""
    storage_key = _storage_key(_key_encryption_secrets()[0])
    token = jwe.JWE(
        key.export_private().encode("utf-8"),
        protected=json_encode({"alg": "dir", "enc": "A256GCM", "kid": storage_key.thumbprint()}),
    )
    token.add_recipient(storage_key)
    return str(token.serialize(compact=True))


def decrypt_private_key(token: str, *, kid: str = "") -> jwk.JWK:
    """The private key in ``token``, trying the current secret and then the fallbacks."""
    for secret in _key_encryption_secrets():
        try:
            envelope = jwe.JWE()
            envelope.deserialize(token, key=_storage_key(secret))
            return jwk.JWK.from_json(envelope.payload.decode("utf-8"))
        except (JWException, ValueError):
            continue
    raise KeyDecryptionError(
        f"Server key {kid or '?'} cannot be decrypted with JARM['KEY_ENCRYPTION_SECRET'] (or SECRET_KEY) "
        "or their fallbacks; restore the secret it was stored under, or add it to the fallbacks and "
        "run `manage.py jarm_keys reencrypt`."
    )


def reencrypt_server_keys() -> int:
    """Encrypt every stored key under the current secret; returns how many were rewritten."""
    count = 0
    with transaction.atomic():
        for server_key in ServerKey.objects.select_for_update().exclude(status=ServerKey.Status.RETIRED):
            key = decrypt_private_key(server_key.private_jwk_encrypted, kid=server_key.kid)
            server_key.private_jwk_encrypted = encrypt_private_key(key)
            server_key.save(update_fields=["private_jwk_encrypted"])
            count += 1
    return count


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


def _describe(key: jwk.JWK) -> str:
    kty, crv = key.get("kty"), key.get("crv")
    return f"{kty} {crv} key" if crv else f"{kty} key"


def _store(key: jwk.JWK, alg: str, status: str | None) -> ServerKey:
    if alg not in KEY_PARAMS:
        raise ConfigurationError(f"Server keys sign with one of {', '.join(KEY_PARAMS)}, not {alg!r}.")
    if not _key_matches_alg(key, alg):
        needed = KEY_PARAMS[alg]
        wanted = f"{needed['kty']} {needed['crv']}" if "crv" in needed else needed["kty"]
        raise ConfigurationError(f"{alg} needs an {wanted} key, not an {_describe(key)}.")
    kid = key.thumbprint()
    try:
        with transaction.atomic():
            has_active = ServerKey.objects.select_for_update().active().filter(alg=alg).exists()
            if status is None:
                status = ServerKey.Status.NEXT if has_active else ServerKey.Status.ACTIVE
            elif status == ServerKey.Status.ACTIVE and has_active:
                raise ConfigurationError(f"A {alg} key is already active; store this one as 'next' and activate it.")
            if ServerKey.objects.filter(kid=kid).exists():
                raise ConfigurationError(f"Key {kid} is already stored.")
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
    except IntegrityError as exc:
        # A concurrent import of the same key, or a concurrent activation for the same algorithm.
        raise ConfigurationError(f"Key {kid} for {alg} conflicts with a key stored at the same time.") from exc
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


def import_server_key(pem: bytes, alg: str, *, password: bytes | None = None, status: str | None = None) -> ServerKey:
    """Store the private key in ``pem`` for ``alg``."""
    try:
        key = jwk.JWK.from_pem(pem, password=password)
    except (ValueError, TypeError, JWException) as exc:
        # Never echo jwcrypto's message: it can describe the key object.
        raise ConfigurationError("The PEM does not hold a readable RSA, EC or Ed25519 private key.") from exc
    if not key.has_private:
        raise ConfigurationError("The PEM holds a public key; a signing key needs its private part.")
    if key.get("kty") == "RSA" and key._get_public_key().key_size < 2048:
        raise ConfigurationError("RSA keys must have at least 2048 bits.")
    return _store(key, alg, status)


# Lifecycle ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    """What one rotation step did for one algorithm."""

    alg: str
    activated: str
    retiring: str | None
    next: str
    retired: tuple[str, ...]


def _locked(alg: str) -> list[ServerKey]:
    return list(ServerKey.objects.select_for_update().filter(alg=alg).exclude(status=ServerKey.Status.RETIRED))


def activate_server_key(kid: str) -> ServerKey:
    """Make key ``kid`` the active key of its algorithm; the active one becomes ``retiring``."""
    now = timezone.now()
    with transaction.atomic():
        try:
            server_key = ServerKey.objects.select_for_update().get(kid=kid)
        except ServerKey.DoesNotExist:
            raise ConfigurationError(f"No server key {kid}.") from None
        if server_key.status == ServerKey.Status.RETIRED:
            raise ConfigurationError(f"Key {kid} is retired; generate or import a new key instead.")
        if server_key.status == ServerKey.Status.ACTIVE:
            return server_key
        for other in _locked(server_key.alg):
            if other.status == ServerKey.Status.ACTIVE:
                other.status, other.retiring_since = ServerKey.Status.RETIRING, now
                other.save(update_fields=["status", "retiring_since"])
        server_key.status, server_key.activated = ServerKey.Status.ACTIVE, now
        server_key.save(update_fields=["status", "activated"])
        transaction.on_commit(bump_generation)
    logger.info("JARM server key activated: kid=%s alg=%s", kid, server_key.alg)
    return server_key


def retire_server_key(kid: str) -> ServerKey:
    """Take key ``kid`` out of the JWKS. The active key cannot be retired: activate another first."""
    with transaction.atomic():
        try:
            server_key = ServerKey.objects.select_for_update().get(kid=kid)
        except ServerKey.DoesNotExist:
            raise ConfigurationError(f"No server key {kid}.") from None
        if server_key.status == ServerKey.Status.ACTIVE:
            alg = server_key.alg
            raise ConfigurationError(f"Key {kid} is signing {alg} responses; activate another {alg} key first.")
        if server_key.status != ServerKey.Status.RETIRED:
            server_key.status, server_key.retired = ServerKey.Status.RETIRED, timezone.now()
            server_key.save(update_fields=["status", "retired"])
            transaction.on_commit(bump_generation)
    logger.info("JARM server key retired: kid=%s alg=%s", kid, server_key.alg)
    return server_key


def rotate_server_keys(alg: str) -> Rotation:
    """One rotation step for ``alg``, without downtime for clients that refresh on unknown kids.

    Keys retiring since the previous step are retired; the ``next`` key (published since the
    previous step, so already in clients' caches) becomes active; the active key becomes
    ``retiring`` (still published, so responses it signed keep verifying); a new ``next`` key
    is generated for the following step.
    """
    from .signals import server_key_rotated

    if alg not in KEY_PARAMS:
        raise ConfigurationError(f"Cannot rotate {alg!r}; choose one of {', '.join(KEY_PARAMS)}.")
    now = timezone.now()
    with transaction.atomic():
        keys = _locked(alg)
        retired = []
        for server_key in keys:
            if server_key.status == ServerKey.Status.RETIRING:
                server_key.status, server_key.retired = ServerKey.Status.RETIRED, now
                server_key.save(update_fields=["status", "retired"])
                retired.append(server_key.kid)
        upcoming = [key for key in keys if key.status == ServerKey.Status.NEXT]
        incoming = upcoming[0] if upcoming else generate_server_key(alg, status=ServerKey.Status.NEXT)
        outgoing = next((key for key in keys if key.status == ServerKey.Status.ACTIVE), None)
        if outgoing is not None:
            outgoing.status, outgoing.retiring_since = ServerKey.Status.RETIRING, now
            outgoing.save(update_fields=["status", "retiring_since"])
        incoming.status, incoming.activated = ServerKey.Status.ACTIVE, now
        incoming.save(update_fields=["status", "activated"])
        following = generate_server_key(alg, status=ServerKey.Status.NEXT)
        rotation = Rotation(
            alg=alg,
            activated=incoming.kid,
            retiring=outgoing.kid if outgoing is not None else None,
            next=following.kid,
            retired=tuple(retired),
        )
        transaction.on_commit(bump_generation)
        transaction.on_commit(lambda: server_key_rotated.send(sender=ServerKey, rotation=rotation))
    logger.info(
        "JARM server keys rotated: alg=%s active=%s retiring=%s next=%s retired=%s",
        alg,
        rotation.activated,
        rotation.retiring,
        rotation.next,
        ",".join(rotation.retired) or "-",
    )
    return rotation


def algs_due_for_rotation(older_than: datetime.timedelta) -> list[str]:
    """Algorithms whose active key has been active longer than ``older_than``."""
    cutoff = timezone.now() - older_than
    return sorted(
        ServerKey.objects.active()
        .filter(Q(activated__lt=cutoff) | Q(activated__isnull=True, created__lt=cutoff))
        .values_list("alg", flat=True)
    )


# Cache --------------------------------------------------------------------------------


def bump_generation() -> None:
    """Tell every process that the server keys changed."""
    shared_cache.bump(GENERATION_CACHE_KEY)
    _store_snapshot(None)


def _current_generation() -> Any:
    return shared_cache.generations()[GENERATION_CACHE_KEY]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: a new snapshot is a new state
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
    rows = ServerKey.objects.published().values_list("kid", "alg", "status", "public_jwk", "private_jwk_encrypted")
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
    shared_cache.forget_generations()


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


def key_state() -> object:
    """An object that changes whenever the published or active server keys may have changed."""
    return _load_snapshot()


def published_jwks() -> dict[str, list[dict[str, Any]]]:
    """The server's JWK Set: DOT's OIDC keys (as DOT publishes them) and our published keys."""
    document: dict[str, list[dict[str, Any]]] = json.loads(published_jwks_json())
    return document


_published: tuple[object, tuple[str, ...], bytes] | None = None


def published_jwks_json() -> bytes:
    """:func:`published_jwks` serialised, rebuilt only when the keys or DOT's key settings change."""
    global _published
    snapshot = _load_snapshot()
    pems = (oauth2_settings.OIDC_RSA_PRIVATE_KEY, *oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE)
    cached = _published
    if cached is not None and cached[0] is snapshot and cached[1] == pems:
        return cached[2]
    keys: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key in _dot_rsa_keys():
        kid = key.thumbprint()
        keys.append(public_jwk_dict(key, alg="RS256", kid=kid))
        seen.add(kid)
    for public in snapshot.published:
        if public["kid"] not in seen:
            keys.append(_as_published(public))
            seen.add(public["kid"])
    document = json.dumps({"keys": keys}).encode("utf-8")
    _published = (snapshot, pems, document)
    return document


def _as_published(public: dict[str, Any]) -> dict[str, Any]:
    """A stored public JWK as the JWKS serves it.

    An Ed25519 key signs under two names (EdDSA and RFC 9864's Ed25519): its JWK carries no
    ``alg``, since verifiers that match ``alg`` (the conformance suite, joserfc) would refuse the
    other name.
    """
    if public.get("kty") == "OKP" and public.get("crv") == "Ed25519":
        return {name: value for name, value in public.items() if name != "alg"}
    return dict(public)


def available_signing_algs() -> list[str]:
    """Enabled algorithms this server can sign with right now (HS* when enabled)."""
    snapshot = _load_snapshot()
    has_dot_key = bool(oauth2_settings.OIDC_RSA_PRIVATE_KEY)
    available = []
    for alg in jarm_settings.signing_algs:
        server_alg = SERVER_KEY_ALG.get(alg, alg)
        if alg in SYMMETRIC_SIGNING_ALGS or server_alg in snapshot.active or (alg == "RS256" and has_dot_key):
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
    active = _load_snapshot().active.get(SERVER_KEY_ALG.get(alg, alg))
    if active is not None:
        kid, encrypted = active
        return SigningKey(alg=alg, kid=kid, jwk=_parsed_key(kid, encrypted))
    if alg == "RS256":
        dot_key = _dot_signing_key()
        if dot_key is not None:
            return dot_key
    raise ConfigurationError(f"No active server key for {alg}; run `manage.py jarm_keys generate --alg {alg}`.")


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
