"""Client encryption keys: from ``jwks``, from ``jwks_uri`` (fetched safely, kept in the state
snapshot), or derived from the client secret (OpenID Connect Core 10.2).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3
from jwcrypto import jwk
from jwcrypto.common import base64url_encode

from . import state
from .conf import SYMMETRIC_ENCRYPTION_ALGS, jarm_settings
from .exceptions import ClientKeysUnreachable, ConfigurationError, KeyUnavailable
from .validation import (
    ClientMetadata,
    address_is_public,
    jwks_problem,
    jwks_uri_problem,
    secret_key_octets,
    select_key,
    symmetric_encryption_secret_problem,
)

logger = logging.getLogger(__name__)

#: A failed fetch is remembered this long, so a dead jwks_uri does not hold a worker per request.
FAILURE_CACHE_SECONDS = 30
#: At most one forced refresh (no suitable key in the fetched set) per URL per this period.
REFRESH_INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class EncryptionKey:
    """The recipient key of a JWE, with the header values to encrypt under."""

    alg: str
    enc: str
    kid: str | None
    jwk: jwk.JWK = field(repr=False)


def derive_secret_key(secret: str, alg: str, enc: str) -> bytes:
    """OpenID Connect Core 10.2: SHA-256/384/512 of the UTF-8 secret, left-most octets kept."""
    octets = secret_key_octets(alg, enc)
    if not octets:
        raise KeyUnavailable(f"No secret-derived key exists for {alg}/{enc}.")
    if octets <= 32:
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
    elif octets <= 48:
        digest = hashlib.sha384(secret.encode("utf-8")).digest()
    else:
        digest = hashlib.sha512(secret.encode("utf-8")).digest()
    return digest[:octets]


def _import_public(key: dict[str, Any]) -> jwk.JWK:
    try:
        return _parsed_public_key(json.dumps(key, sort_keys=True))
    except Exception as exc:  # jwcrypto raises several types for malformed keys
        raise KeyUnavailable(f"The client's key {key.get('kid', '')!r} cannot be read.") from exc


@functools.lru_cache(maxsize=1024)
def _parsed_public_key(serialized: str) -> jwk.JWK:
    """A pure function of the key's content: remembering it can never be stale."""
    return jwk.JWK.from_json(serialized)


def get_encryption_key(application: Any, metadata: ClientMetadata) -> EncryptionKey:
    """The key to encrypt ``application``'s responses to; :class:`KeyUnavailable` if none."""
    alg = metadata.authorization_encrypted_response_alg
    enc = metadata.encryption_enc
    if alg not in jarm_settings.encryption_algs:
        raise KeyUnavailable(f"{alg} is not enabled in JARM['ENCRYPTION_ALGS_SUPPORTED'] (or the profile).")
    if enc not in jarm_settings.encryption_encs:
        raise KeyUnavailable(f"{enc} is not enabled in JARM['ENCRYPTION_ENCS_SUPPORTED'].")
    if alg in SYMMETRIC_ENCRYPTION_ALGS:
        problem = symmetric_encryption_secret_problem(application, alg, enc)
        if problem:
            raise KeyUnavailable(problem)
        secret = derive_secret_key(application.client_secret, alg, enc)
        return EncryptionKey(alg, enc, None, jwk.JWK(kty="oct", k=base64url_encode(secret)))
    if metadata.jwks:
        chosen = select_key(metadata.jwks, alg)
    elif metadata.jwks_uri:
        chosen = _select_from_uri(metadata.jwks_uri, alg)
    else:
        raise KeyUnavailable(f"{alg} encrypts to the client's public key: set its JWK Set or URL.")
    return EncryptionKey(alg, enc, chosen.get("kid"), _import_public(chosen))


# jwks_uri ------------------------------------------------------------------------------
#
# Fetched sets and failures live in the state snapshot (dropped with it when any setting or
# client changes), each with its own expiry: CLIENT_JWKS_CACHE_SECONDS for a set,
# FAILURE_CACHE_SECONDS for a failure.


def _select_from_uri(uri: str, alg: str) -> dict[str, Any]:
    jwks = fetch_client_jwks(uri)
    try:
        return select_key(jwks, alg)
    except KeyUnavailable:
        # The client may have rotated its keys since we fetched them: one refresh, rate-limited.
        snapshot = state.current()
        if snapshot.recall("client-jwks-refreshed", uri):
            raise
        snapshot.remember("client-jwks-refreshed", uri, True, ttl=REFRESH_INTERVAL_SECONDS)
        return select_key(fetch_client_jwks(uri, refresh=True), alg)


def fetch_client_jwks(uri: str, *, refresh: bool = False) -> dict[str, Any]:
    """The JWK Set at ``uri``, as fetched earlier or now; :class:`ClientKeysUnreachable` on failure."""
    snapshot = state.current()
    if not refresh:
        cached = snapshot.recall("client-jwks", uri)
        if cached is not None:
            return dict(cached)
        failure = snapshot.recall("client-jwks-failure", uri)
        if failure is not None:
            raise ClientKeysUnreachable(f"Fetching the client's jwks_uri failed recently: {failure}")
    try:
        jwks = _fetch(uri)
    except ConfigurationError as exc:
        snapshot.remember("client-jwks-failure", uri, str(exc), ttl=FAILURE_CACHE_SECONDS)
        logger.warning("Client jwks_uri fetch failed: host=%s reason=%s", _host_of(uri), exc)
        raise ClientKeysUnreachable(str(exc)) from exc
    snapshot.remember("client-jwks", uri, jwks, ttl=jarm_settings.CLIENT_JWKS_CACHE_SECONDS)
    snapshot.forget("client-jwks-failure", uri)
    return jwks


def _host_of(uri: str) -> str:
    try:
        return urlsplit(uri).hostname or "?"
    except ValueError:
        return "?"


def _allowed_address(address: str) -> bool:
    return jarm_settings.CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES or address_is_public(address)


def _resolve(host: str, port: int) -> str:
    """One address of ``host`` to connect to; every address must be public (SSRF defence)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigurationError(f"The jwks_uri host {host!r} does not resolve.") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise ConfigurationError(f"The jwks_uri host {host!r} does not resolve.")
    refused = [address for address in addresses if not _allowed_address(address)]
    if refused:
        raise ConfigurationError(
            f"The jwks_uri host {host!r} resolves to a non-public address; set "
            "JARM['CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES'] to allow it."
        )
    return addresses[0]


def _fetch(uri: str) -> dict[str, Any]:
    problem = jwks_uri_problem(uri)
    if problem:
        raise ConfigurationError(problem)
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _resolve(host, port)
    timeout = jarm_settings.CLIENT_JWKS_TIMEOUT
    max_bytes = jarm_settings.CLIENT_JWKS_MAX_BYTES
    headers = {
        "Host": parts.netloc.rsplit("@", 1)[-1],
        "Accept": "application/jwk-set+json, application/json",
    }
    # Connect to the address we checked, not to a second DNS answer (DNS rebinding).
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, port, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED", maxsize=1
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, maxsize=1)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    deadline = time.monotonic() + timeout * 2
    try:
        response = pool.urlopen(
            "GET",
            path,
            headers=headers,
            redirect=False,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            preload_content=False,
        )
        try:
            if response.status != 200:
                raise ConfigurationError(f"The jwks_uri answered HTTP {response.status} (redirects are not followed).")
            body = b""
            for chunk in response.stream(8192):
                body += chunk
                if len(body) > max_bytes:
                    raise ConfigurationError(f"The jwks_uri answered more than {max_bytes} bytes.")
                if time.monotonic() > deadline:
                    raise ConfigurationError("The jwks_uri answered too slowly.")
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise ConfigurationError(f"The jwks_uri could not be fetched ({type(exc).__name__}).") from exc
    finally:
        pool.close()
    try:
        jwks = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError("The jwks_uri did not answer JSON.") from exc
    problem = jwks_problem(jwks)
    if problem:
        raise ConfigurationError(f"The jwks_uri did not answer a public JWK Set: {problem}")
    return dict(jwks)


# Registration-time checks ----------------------------------------------------------------


def unreadable_key_problem(jwks: dict[str, Any]) -> str:
    """Why a key of the public JWK Set ``jwks`` cannot be read, or ``""`` when all can."""
    for key in jwks.get("keys", []):
        if not isinstance(key, dict):
            continue  # jwks_problem() reports the shape
        try:
            _import_public(key)
        except ConfigurationError as exc:
            return str(exc)
    return ""
