"""Server signing keys: generation, encryption at rest, the lifecycle, and the published JWK Set.

The lifecycle keeps two guarantees (DESIGN 6.2 and 6.3), with R = ``STATE_REFRESH_SECONDS``,
M = the JWK Set's ``max-age`` (:attr:`~django_jarm.conf.JARMSettings.jwks_max_age`) and
L = ``RESPONSE_LIFETIME``:

* **publish before sign**: a key signs only once every process publishes it: from R seconds
  after it was stored. It is activated (``activate``, ``rotate``) only once it has been
  published for M + R seconds, so that every client's cached JWK Set has it.
* **keep after sign**: a key that stopped signing stays published for R + L + M seconds, so that
  every response it signed expires before a client could fetch a JWK Set without it.

An operation that would break either is refused with the time to wait (:class:`LifecycleConflict`),
unless ``force=True``. Which keys are published and which one signs comes from the per-process
snapshot (:mod:`django_jarm.state`).
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
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

from . import state
from ._compat import jwk_from_pem
from .conf import SYMMETRIC_SIGNING_ALGS, jarm_settings
from .exceptions import ConfigurationError, KeyDecryptionError, KeyUnavailable, LifecycleConflict
from .models import ServerKey
from .signals import server_key_rotated
from .validation import hmac_secret_problem

logger = logging.getLogger(__name__)


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


@functools.lru_cache(maxsize=8)
def _storage_key(secret: str) -> jwk.JWK:
    """The A256GCM key protecting stored private keys, derived from ``secret`` with HKDF.

    A pure function of the secret, so remembering its result can never be stale.
    """
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"django_jarm server keys",
        info=b"django_jarm key encryption v1",
    ).derive(secret.encode("utf-8"))
    return jwk.JWK(kty="oct", k=base64url_encode(derived))


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
                # DOT's OIDC key signs RS256 until a JARM RS256 key does: a new one must wait for
                # clients' cached JWK Sets like any rotation (activate it after activation_delay()).
                takes_over = alg == "RS256" and bool(oauth2_settings.OIDC_RSA_PRIVATE_KEY)
                status = ServerKey.Status.NEXT if has_active or takes_over else ServerKey.Status.ACTIVE
            elif status == ServerKey.Status.ACTIVE and has_active:
                raise LifecycleConflict(f"A {alg} key is already active; store this one as 'next' and activate it.")
            if ServerKey.objects.filter(kid=kid).exists():
                raise LifecycleConflict(f"Key {kid} is already stored.")
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
    except IntegrityError as exc:
        # A concurrent import of the same key, or a concurrent activation for the same algorithm.
        raise LifecycleConflict(f"Key {kid} for {alg} conflicts with a key stored at the same time.") from exc
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


def publication_wait() -> float:
    """Seconds from storing a key to every process publishing it: R."""
    return jarm_settings.STATE_REFRESH_SECONDS


def activation_delay() -> float:
    """Seconds a key must have been published before it may be activated: M + R."""
    return jarm_settings.jwks_max_age + jarm_settings.STATE_REFRESH_SECONDS


def retirement_delay() -> float:
    """Seconds a key that stopped signing stays published: R + L + M."""
    return jarm_settings.STATE_REFRESH_SECONDS + jarm_settings.RESPONSE_LIFETIME + jarm_settings.jwks_max_age


def activation_time(server_key: ServerKey) -> datetime.datetime:
    """When ``server_key`` has been published long enough to be activated."""
    return server_key.created + datetime.timedelta(seconds=activation_delay())


def retirement_time(server_key: ServerKey) -> datetime.datetime | None:
    """When ``server_key`` may leave the JWK Set (``None``: it is still signing, or never signed)."""
    if server_key.retiring_since is None:
        return None
    return server_key.retiring_since + datetime.timedelta(seconds=retirement_delay())


def _wait(until: datetime.datetime, now: datetime.datetime) -> str:
    seconds = max(0, round((until - now).total_seconds()))
    return f"{until:%Y-%m-%d %H:%M:%S} UTC (in {seconds} s)"


@dataclass(frozen=True)
class Rotation:
    """What one rotation step did for one algorithm, and what it left waiting."""

    alg: str
    #: The key that signs from now on, or ``None`` when no key was ready.
    activated: str | None
    retiring: str | None
    next: str
    retired: tuple[str, ...] = ()
    #: Retiring keys kept because responses they signed may still be presented: (kid, when).
    kept: tuple[tuple[str, datetime.datetime], ...] = ()
    #: The next key, when it has not been published long enough to sign: when it will be.
    ready_at: datetime.datetime | None = None


def _locked(alg: str) -> list[ServerKey]:
    return list(
        ServerKey.objects.select_for_update()
        .filter(alg=alg)
        .exclude(status=ServerKey.Status.RETIRED)
        .order_by("created")
    )


def _get_locked(kid: str) -> ServerKey:
    try:
        return ServerKey.objects.select_for_update().get(kid=kid)
    except ServerKey.DoesNotExist:
        raise LifecycleConflict(f"No server key {kid}.") from None


def _make_active(server_key: ServerKey, others: list[ServerKey], now: datetime.datetime) -> ServerKey | None:
    """``server_key`` signs from now on; the active key of its algorithm (returned) becomes retiring."""
    outgoing = next((other for other in others if other.status == ServerKey.Status.ACTIVE), None)
    if outgoing is not None and outgoing.pk != server_key.pk:
        outgoing.status, outgoing.retiring_since = ServerKey.Status.RETIRING, now
        outgoing.save(update_fields=["status", "retiring_since"])
    server_key.status, server_key.activated, server_key.retiring_since = ServerKey.Status.ACTIVE, now, None
    server_key.save(update_fields=["status", "activated", "retiring_since"])
    return outgoing


def activate_server_key(kid: str, *, force: bool = False) -> ServerKey:
    """Make key ``kid`` the active key of its algorithm; the active one becomes ``retiring``.

    Refused (:class:`LifecycleConflict`, with the time to wait) while ``kid`` has been published for
    less than :func:`activation_delay`, unless ``force``: clients holding an older JWK Set would
    not find it.
    """
    now = timezone.now()
    with transaction.atomic():
        server_key = _get_locked(kid)
        if server_key.status == ServerKey.Status.RETIRED:
            raise LifecycleConflict(f"Key {kid} is retired; generate or import a new key instead.")
        if server_key.status == ServerKey.Status.ACTIVE:
            return server_key
        ready = activation_time(server_key)
        if now < ready and not force:
            raise LifecycleConflict(
                f"Key {kid} has been published for {(now - server_key.created).total_seconds():.0f} s; clients may "
                f"cache the JWK Set for {jarm_settings.jwks_max_age} s, so it can sign from {_wait(ready, now)}. "
                "Activate it then, or force it now (clients holding an older JWK Set fail until they fetch it again).",
                retry_after=(ready - now).total_seconds(),
            )
        _make_active(server_key, _locked(server_key.alg), now)
    logger.info("JARM server key activated: kid=%s alg=%s forced=%s", kid, server_key.alg, force and now < ready)
    return server_key


def retire_server_key(kid: str, *, force: bool = False) -> ServerKey:
    """Take key ``kid`` out of the JWK Set. The active key cannot be retired: activate another first.

    A key that stopped signing less than :func:`retirement_delay` ago is kept (refused with the time
    to wait) unless ``force``: responses it signed may still be presented.
    """
    now = timezone.now()
    with transaction.atomic():
        server_key = _get_locked(kid)
        if server_key.status == ServerKey.Status.ACTIVE:
            alg = server_key.alg
            raise LifecycleConflict(f"Key {kid} is signing {alg} responses; activate another {alg} key first.")
        if server_key.status == ServerKey.Status.RETIRED:
            return server_key
        ready = retirement_time(server_key)
        if ready is not None and now < ready and not force:
            raise LifecycleConflict(
                f"Key {kid} stopped signing {(now - server_key.retiring_since).total_seconds():.0f} s ago "  # type: ignore[operator]
                f"(responses live {jarm_settings.RESPONSE_LIFETIME} s, clients cache the JWK Set "
                f"{jarm_settings.jwks_max_age} s): retire it from {_wait(ready, now)}, or force it now "
                "(responses it signed then fail to verify).",
                retry_after=(ready - now).total_seconds(),
            )
        server_key.status, server_key.retired = ServerKey.Status.RETIRED, now
        server_key.save(update_fields=["status", "retired"])
    logger.info("JARM server key retired: kid=%s alg=%s", kid, server_key.alg)
    return server_key


def rotate_server_keys(alg: str, *, force: bool = False) -> Rotation:
    """One rotation step for ``alg``: advance every key whose wait is over, and say what still waits.

    * retiring keys whose keep window is over are retired; the others are kept;
    * the ``next`` key, once published for :func:`activation_delay`, becomes active and the active
      key becomes retiring; a new ``next`` key is generated for the following step;
    * without a ``next`` key (the first rotation) one is generated, and activated by a later step.

    ``force`` activates and retires without waiting (clients with cached JWK Sets may fail).
    """
    if alg not in KEY_PARAMS:
        raise ConfigurationError(f"Cannot rotate {alg!r}; choose one of {', '.join(KEY_PARAMS)}.")
    now = timezone.now()
    with transaction.atomic():
        keys = _locked(alg)
        retired: list[str] = []
        kept: list[tuple[str, datetime.datetime]] = []
        for server_key in keys:
            if server_key.status != ServerKey.Status.RETIRING:
                continue
            ready = retirement_time(server_key)
            if ready is not None and now < ready and not force:
                kept.append((server_key.kid, ready))
                continue
            server_key.status, server_key.retired = ServerKey.Status.RETIRED, now
            server_key.save(update_fields=["status", "retired"])
            retired.append(server_key.kid)
        upcoming = [key for key in keys if key.status == ServerKey.Status.NEXT]
        incoming = upcoming[0] if upcoming else generate_server_key(alg, status=ServerKey.Status.NEXT)
        ready_at = activation_time(incoming)
        if now < ready_at and not force:
            rotation = Rotation(
                alg=alg,
                activated=None,
                retiring=None,
                next=incoming.kid,
                retired=tuple(retired),
                kept=tuple(kept),
                ready_at=ready_at,
            )
        else:
            outgoing = _make_active(incoming, keys, now)
            following = generate_server_key(alg, status=ServerKey.Status.NEXT)
            rotation = Rotation(
                alg=alg,
                activated=incoming.kid,
                retiring=outgoing.kid if outgoing is not None else None,
                next=following.kid,
                retired=tuple(retired),
                kept=tuple(kept),
            )
        transaction.on_commit(lambda: server_key_rotated.send(sender=ServerKey, rotation=rotation))
    logger.info(
        "JARM server keys rotated: alg=%s active=%s next=%s retired=%s kept=%s",
        alg,
        rotation.activated or "-",
        rotation.next,
        ",".join(rotation.retired) or "-",
        ",".join(kid for kid, _ in rotation.kept) or "-",
    )
    return rotation


def describe_rotation(rotation: Rotation, now: datetime.datetime | None = None) -> str:
    """``rotation`` in words, with what waits and until when."""
    now = now or timezone.now()
    parts = []
    if rotation.activated:
        parts.append(f"{rotation.alg}: {rotation.activated} is active; {rotation.retiring or 'no key'} is retiring")
    else:
        assert rotation.ready_at is not None
        parts.append(
            f"{rotation.alg}: no key activated: the next key {rotation.next} can sign from "
            f"{_wait(rotation.ready_at, now)}, once clients' cached JWK Sets (max-age "
            f"{jarm_settings.jwks_max_age} s) include it; rotate again then (or force it now)"
        )
    if rotation.activated:
        parts.append(f"next {rotation.next}")
    if rotation.retired:
        parts.append(f"retired {', '.join(rotation.retired)}")
    for kid, when in rotation.kept:
        parts.append(f"kept {kid} until {_wait(when, now)}")
    return "; ".join(parts) + "."


def algs_due_for_rotation(older_than: datetime.timedelta) -> list[str]:
    """Algorithms whose active key has been active longer than ``older_than``."""
    cutoff = timezone.now() - older_than
    return sorted(
        ServerKey.objects.active()
        .filter(Q(activated__lt=cutoff) | Q(activated__isnull=True, created__lt=cutoff))
        .values_list("alg", flat=True)
    )


# The published keys, as this process's snapshot holds them -----------------------------------


@dataclass(frozen=True)
class PublishedKey:
    kid: str
    alg: str
    status: str
    public: dict[str, Any] = field(repr=False)
    encrypted: str = field(repr=False)
    created: datetime.datetime
    retiring_since: datetime.datetime | None


@dataclass(frozen=True)
class PublishedKeys:
    """The server keys in the JWK Set (next, active, retiring), and the JWK Set document."""

    keys: tuple[PublishedKey, ...]
    jwks_json: bytes

    def signer(self, alg: str, now: datetime.datetime) -> PublishedKey | None:
        """The key that signs ``alg`` at ``now``.

        The active key, once it has been published for R seconds (every process publishes it by
        then); before that, the key that signed last (the most recently retiring one).
        """
        refresh = datetime.timedelta(seconds=publication_wait())
        for key in self.keys:
            if key.alg == alg and key.status == ServerKey.Status.ACTIVE and now >= key.created + refresh:
                return key
        retiring = [k for k in self.keys if k.alg == alg and k.status == ServerKey.Status.RETIRING and k.retiring_since]
        return max(retiring, key=lambda k: k.retiring_since, default=None)  # type: ignore[arg-type, return-value]

    def signer_stable_for(self, alg: str, now: datetime.datetime) -> float | None:
        """Seconds from ``now`` during which :meth:`signer` keeps its answer (``None``: until the keys change).

        Only time changes it: an active key of ``alg`` reaching the end of its publication wait.
        """
        refresh = datetime.timedelta(seconds=publication_wait())
        waits = [
            (key.created + refresh - now).total_seconds()
            for key in self.keys
            if key.alg == alg and key.status == ServerKey.Status.ACTIVE and now < key.created + refresh
        ]
        return min(waits, default=None)

    def until_new_keys_sign(self, now: datetime.datetime) -> float:
        """Seconds from ``now`` until every active key stored lately has passed its publication wait."""
        waits = (self.signer_stable_for(alg, now) for alg in self.active_algs())
        return max((wait for wait in waits if wait is not None), default=0.0)

    def active_algs(self) -> set[str]:
        return {key.alg for key in self.keys if key.status == ServerKey.Status.ACTIVE}


def published_keys() -> PublishedKeys:
    """The published server keys of the current snapshot (loaded once per snapshot)."""
    return state.current().memo("server-keys", None, _load_published_keys)


def _load_published_keys() -> PublishedKeys:
    rows = ServerKey.objects.published().order_by("alg", "-created")
    keys = tuple(
        PublishedKey(
            kid=row.kid,
            alg=row.alg,
            status=row.status,
            public=row.public_jwk,
            encrypted=row.private_jwk_encrypted,
            created=row.created,
            retiring_since=row.retiring_since,
        )
        for row in rows
    )
    document: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key in _dot_rsa_keys():
        kid = key.thumbprint()
        document.append(public_jwk_dict(key, alg="RS256", kid=kid))
        seen.add(kid)
    for published in keys:
        if published.kid not in seen:
            document.append(_as_published(published.public))
            seen.add(published.kid)
    return PublishedKeys(keys=keys, jwks_json=json.dumps({"keys": document}).encode("utf-8"))


def _parsed_key(kid: str, encrypted: str) -> jwk.JWK:
    return state.current().memo("signing-key", kid, lambda: decrypt_private_key(encrypted, kid=kid))


# DOT's OIDC keys ------------------------------------------------------------------------


def _dot_rsa_keys() -> list[jwk.JWK]:
    """DOT's OIDC RSA keys, the active one first (parsed once per process by DOT's cache)."""
    if not oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        return []
    pems = [oauth2_settings.OIDC_RSA_PRIVATE_KEY, *oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE]
    return [jwk_from_pem(pem) for pem in pems]


# Public API ---------------------------------------------------------------------------


def published_jwks() -> dict[str, list[dict[str, Any]]]:
    """The server's JWK Set: DOT's OIDC keys (as DOT publishes them) and our published keys."""
    document: dict[str, list[dict[str, Any]]] = json.loads(published_jwks_json())
    return document


def published_jwks_json() -> bytes:
    """:func:`published_jwks` serialised, as the JWKS endpoint serves it."""
    return published_keys().jwks_json


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
    """Enabled algorithms this server can sign with (HS* when enabled)."""
    active = published_keys().active_algs()
    if oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        active.add("RS256")
    return [
        alg
        for alg in jarm_settings.signing_algs
        if alg in SYMMETRIC_SIGNING_ALGS or SERVER_KEY_ALG.get(alg, alg) in active
    ]


def get_signing_key(alg: str, application: Any) -> SigningKey:
    """The key to sign ``application``'s response with ``alg``; :class:`KeyUnavailable` when none."""
    if alg not in jarm_settings.signing_algs:
        raise KeyUnavailable(f"{alg} is not enabled in JARM['SIGNING_ALGS_SUPPORTED'] (or the profile).")
    if alg in SYMMETRIC_SIGNING_ALGS:
        return _client_secret_key(alg, application)
    snapshot = state.current()
    chosen: SigningKey | None = snapshot.recall("signer", alg)
    if chosen is not None:
        return chosen
    published = published_keys()
    # RFC 9864: Ed25519 is signed by the EdDSA key, under the name the client registered.
    key_alg, now = SERVER_KEY_ALG.get(alg, alg), timezone.now()
    signer = published.signer(key_alg, now)
    if signer is not None:
        chosen = SigningKey(alg=alg, kid=signer.kid, jwk=_parsed_key(signer.kid, signer.encrypted))
        # Kept until the snapshot changes or a waiting key may start signing, whichever is first.
        snapshot.remember("signer", alg, chosen, ttl=published.signer_stable_for(key_alg, now))
        return chosen
    if alg == "RS256":
        dot_keys = _dot_rsa_keys()
        if dot_keys:
            return SigningKey(alg="RS256", kid=dot_keys[0].thumbprint(), jwk=dot_keys[0])
    if SERVER_KEY_ALG.get(alg, alg) in published.active_algs():
        raise KeyUnavailable(f"The new {alg} key starts signing once every process publishes it (within a second).")
    raise KeyUnavailable(f"No active server key for {alg}; run `manage.py jarm_keys generate --alg {alg}`.")


def _client_secret_key(alg: str, application: Any) -> SigningKey:
    # OpenID Connect Core 10.1: the MAC key is the octets of the UTF-8 client_secret.
    problem = hmac_secret_problem(application, alg)
    if problem:
        raise KeyUnavailable(problem)
    secret = application.client_secret.encode("utf-8")
    key = jwk.JWK(kty="oct", k=base64url_encode(secret))
    # RFC 7638 thumbprint of the secret's JWK: identifies the secret version, reveals nothing
    # a signature made with it does not.
    return SigningKey(alg=alg, kid=key.thumbprint(), jwk=key)
