"""Client encryption keys: from ``jwks``, from ``jwks_uri`` (fetched safely, cached), or
derived from the client secret (OpenID Connect Core 10.2).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
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

from . import cache as shared_cache
from .conf import SYMMETRIC_ENCRYPTION_ALGS, jarm_settings
from .exceptions import ConfigurationError
from .models import ClientSettings, jwks_problem, symmetric_encryption_secret_problem

logger = logging.getLogger(__name__)

CACHE_PREFIX = "django_jarm:client-jwks:"
#: A failed fetch is remembered this long, so a dead jwks_uri does not hold a worker per request.
FAILURE_CACHE_SECONDS = 30
#: At most one forced refresh (no suitable key in the cached set) per client per this period.
REFRESH_INTERVAL_SECONDS = 60

#: Key length in octets each symmetric key management algorithm needs (RFC 7518 4.4, 4.7).
KEY_WRAP_OCTETS = {
    "A128KW": 16,
    "A192KW": 24,
    "A256KW": 32,
    "A128GCMKW": 16,
    "A192GCMKW": 24,
    "A256GCMKW": 32,
}
#: Key length in octets of each content encryption algorithm, used by ``dir`` (RFC 7518 5.1).
ENC_KEY_OCTETS = {
    "A128CBC-HS256": 32,
    "A192CBC-HS384": 48,
    "A256CBC-HS512": 64,
    "A128GCM": 16,
    "A192GCM": 24,
    "A256GCM": 32,
}
#: Key types and curves that each asymmetric algorithm family can encrypt to.
EC_CURVES = {"P-256", "P-384", "P-521"}
OKP_CURVES = {"X25519"}


@dataclass(frozen=True)
class EncryptionKey:
    """The recipient key of a JWE, with the header values to encrypt under."""

    alg: str
    enc: str
    kid: str | None
    jwk: jwk.JWK = field(repr=False)


def secret_key_octets(alg: str, enc: str) -> int:
    """How many octets of key a secret-derived key for ``alg``/``enc`` needs."""
    octets = ENC_KEY_OCTETS.get(enc) if alg == "dir" else KEY_WRAP_OCTETS.get(alg)
    if octets is None:
        raise ConfigurationError(f"No secret-derived key for {alg}/{enc}.")
    return octets


def derive_secret_key(secret: str, alg: str, enc: str) -> bytes:
    """OpenID Connect Core 10.2: SHA-256/384/512 of the UTF-8 secret, left-most octets kept."""
    octets = secret_key_octets(alg, enc)
    if octets <= 32:
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
    elif octets <= 48:
        digest = hashlib.sha384(secret.encode("utf-8")).digest()
    else:
        digest = hashlib.sha512(secret.encode("utf-8")).digest()
    return digest[:octets]


def key_fits(key: dict[str, Any], alg: str) -> bool:
    """Whether the public JWK ``key`` can receive a JWE with key management ``alg``."""
    if jwks_problem({"keys": [key]}):
        return False  # malformed members: never a candidate
    if key.get("use") not in (None, "enc"):
        return False
    if key.get("alg") not in (None, alg):
        return False
    operations = key.get("key_ops")
    if operations is not None and not {"encrypt", "wrapKey", "deriveKey"} & set(operations):
        return False
    if alg.startswith("RSA-OAEP"):
        return key.get("kty") == "RSA"
    if alg.startswith("ECDH-ES"):
        return (key.get("kty") == "EC" and key.get("crv") in EC_CURVES) or (
            key.get("kty") == "OKP" and key.get("crv") in OKP_CURVES
        )
    return False


def select_key(jwks: dict[str, Any], alg: str) -> dict[str, Any]:
    """The one key of ``jwks`` to encrypt to with ``alg``.

    Keys marked with ``alg`` win over unmarked ones; more than one equally good key is
    ambiguous (the client could not tell which one we used without a kid to go on).
    """
    fitting = [key for key in jwks.get("keys", []) if isinstance(key, dict) and key_fits(key, alg)]
    marked = [key for key in fitting if key.get("alg") == alg]
    chosen = marked or fitting
    if not chosen:
        raise ConfigurationError(
            f"The client's JWK Set has no key for {alg} (use 'enc' or absent, of the matching type)."
        )
    if len(chosen) > 1:
        raise ConfigurationError(
            f'The client\'s JWK Set has {len(chosen)} keys that fit {alg}; mark one with "alg": "{alg}".'
        )
    return chosen[0]


def _import_public(key: dict[str, Any]) -> jwk.JWK:
    try:
        return _parsed_public_key(json.dumps(key, sort_keys=True))
    except Exception as exc:  # jwcrypto raises several types for malformed keys
        raise ConfigurationError(f"The client's key {key.get('kid', '')!r} cannot be read.") from exc


@functools.lru_cache(maxsize=4096)
def _parsed_public_key(serialized: str) -> jwk.JWK:
    """Parsed once per process: keyed by the key's content, so it never needs invalidating."""
    return jwk.JWK.from_json(serialized)


def get_encryption_key(application: Any, settings: ClientSettings) -> EncryptionKey:
    """The key to encrypt ``application``'s responses to; :class:`ConfigurationError` if none."""
    alg = settings.authorization_encrypted_response_alg
    enc = settings.encryption_enc
    if alg not in jarm_settings.encryption_algs:
        raise ConfigurationError(f"{alg} is not enabled in JARM['ENCRYPTION_ALGS_SUPPORTED'] (or the profile).")
    if enc not in jarm_settings.encryption_encs:
        raise ConfigurationError(f"{enc} is not enabled in JARM['ENCRYPTION_ENCS_SUPPORTED'].")
    if alg in SYMMETRIC_ENCRYPTION_ALGS:
        problem = symmetric_encryption_secret_problem(application, alg, enc)
        if problem:
            raise ConfigurationError(problem)
        secret = derive_secret_key(application.client_secret, alg, enc)
        return EncryptionKey(alg, enc, None, jwk.JWK(kty="oct", k=base64url_encode(secret)))
    if settings.jwks:
        chosen = select_key(settings.jwks, alg)
    elif settings.jwks_uri:
        chosen = _select_from_uri(settings.jwks_uri, alg)
    else:
        raise ConfigurationError(f"{alg} encrypts to the client's public key: set its JWK Set or URL.")
    return EncryptionKey(alg, enc, chosen.get("kid"), _import_public(chosen))


# jwks_uri ------------------------------------------------------------------------------


def _cache_key(uri: str, kind: str) -> str:
    return CACHE_PREFIX + kind + ":" + hashlib.sha256(uri.encode("utf-8")).hexdigest()


def _select_from_uri(uri: str, alg: str) -> dict[str, Any]:
    jwks = fetch_client_jwks(uri)
    try:
        return select_key(jwks, alg)
    except ConfigurationError:
        # The client may have rotated its keys since we cached them: one refresh, rate-limited.
        if not shared_cache.add(_cache_key(uri, "refresh"), True, REFRESH_INTERVAL_SECONDS):
            raise
        return select_key(fetch_client_jwks(uri, refresh=True), alg)


def fetch_client_jwks(uri: str, *, refresh: bool = False) -> dict[str, Any]:
    """The JWK Set at ``uri``, from the cache or fetched; :class:`ConfigurationError` on failure."""
    key = _cache_key(uri, "set")
    failure_key = _cache_key(uri, "failure")
    if not refresh:
        cached = shared_cache.get(key)
        if cached is not None:
            return dict(cached)
        failure = shared_cache.get(failure_key)
        if failure is not None:
            raise ConfigurationError(f"Fetching the client's jwks_uri failed recently: {failure}")
    try:
        jwks = _fetch(uri)
    except ConfigurationError as exc:
        shared_cache.set(failure_key, str(exc), FAILURE_CACHE_SECONDS)
        logger.warning("Client jwks_uri fetch failed: host=%s reason=%s", urlsplit(uri).hostname, exc)
        raise
    shared_cache.set(key, jwks, int(jarm_settings.CLIENT_JWKS_CACHE_SECONDS))
    shared_cache.delete(failure_key)
    return jwks


def _allowed_address(address: str) -> bool:
    if jarm_settings.CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES:
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


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
    parts = urlsplit(uri)
    if parts.scheme == "http" and not jarm_settings.CLIENT_JWKS_ALLOW_HTTP:
        raise ConfigurationError("The jwks_uri must use https (JARM['CLIENT_JWKS_ALLOW_HTTP'] is off).")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError("The jwks_uri is not an http(s) URL.")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _resolve(host, port)
    timeout = float(jarm_settings.CLIENT_JWKS_TIMEOUT)
    max_bytes = int(jarm_settings.CLIENT_JWKS_MAX_BYTES)
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


def jwks_uri_host_problem(uri: str) -> str:
    """Why the fetcher would refuse ``uri``'s host without resolving it, or ``""``.

    Only what is known without DNS: a missing host, and a host that is a non-public address
    literal (or ``localhost``). A name that resolves to a non-public address is still refused
    when it is fetched, since its DNS answer may change after it was checked.
    """
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return "The jwks_uri is not a URL."
    if not host:
        return "The jwks_uri has no host."
    if jarm_settings.CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES:
        return ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            return "The jwks_uri host is a loopback name, which this server does not fetch from."
        return ""
    if not _allowed_address(str(literal)):
        return "The jwks_uri host is a non-public address, which this server does not fetch from."
    return ""


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
