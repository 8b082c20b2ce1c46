"""Client encryption keys: from ``jwks``, from ``jwks_uri`` (fetched safely, cached), or
derived from the client secret (OpenID Connect Core 10.2).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import http.client
import io
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwcrypto import jwk
from jwcrypto.common import base64url_decode, base64url_encode

from . import cache as shared_cache
from .conf import SYMMETRIC_ENCRYPTION_ALGS, jarm_settings
from .exceptions import ConfigurationError
from .models import ClientSettings, jwks_problem, jwks_uri_problem, symmetric_encryption_secret_problem

logger = logging.getLogger(__name__)

CACHE_PREFIX = "django_jarm:client-jwks:"
#: A failed fetch is remembered this long, so a dead jwks_uri does not hold a worker per request.
FAILURE_CACHE_SECONDS = 30
#: At most one forced refresh (no suitable key in the cached set) per client per this period.
REFRESH_INTERVAL_SECONDS = 60
#: At most this many jwks_uri fetches run at once in a process; past it a request fails at once.
MAX_CONCURRENT_FETCHES = 4

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


#: RSA modulus sizes accepted for client keys: FAPI 1.0 Advanced 8.6 and FAPI 2.0 Security Profile
#: 5.4.1 require at least 2048 bits; the upper bound keeps one encryption cheap.
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 16384
#: Octets of the coordinates of each curve (RFC 7518 6.2.1.2, RFC 8037 2).
CURVE_OCTETS = {"P-256": 32, "P-384": 48, "P-521": 66, "X25519": 32, "X448": 56, "Ed25519": 32, "Ed448": 57}
_EC_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


def _b64_member(key: dict[str, Any], member: str) -> bytes:
    value = key.get(member)
    if not isinstance(value, str) or not value or not set(value) <= _BASE64URL:
        raise ValueError(f'"{member}" is missing or not base64url')
    return base64url_decode(value)


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def public_key_problem(key: dict[str, Any]) -> str:
    """Why the public JWK ``key`` is too weak or unusable to encrypt to, or ``""``.

    RSA: a modulus of 2048 to 16384 bits and a valid exponent; EC: a point on its curve; OKP: a
    value of the curve's size. Keys of other types are never encrypted to and pass here.
    """
    kid = key.get("kid")
    name = f"The client's key {kid!r}" if isinstance(kid, str) else "A key of the client"
    try:
        kty = key.get("kty")
        if kty == "RSA":
            modulus = int.from_bytes(_b64_member(key, "n"), "big")
            exponent = int.from_bytes(_b64_member(key, "e"), "big")
            bits = modulus.bit_length()
            if bits < RSA_MIN_BITS:
                return f"{name} is a {bits}-bit RSA key; at least {RSA_MIN_BITS} bits are required."
            if bits > RSA_MAX_BITS:
                return f"{name} is a {bits}-bit RSA key; at most {RSA_MAX_BITS} bits are accepted."
            if modulus % 2 == 0 or exponent % 2 == 0 or not 3 <= exponent < modulus:
                return f"{name} is not a valid RSA public key (its modulus and exponent must be odd)."
            rsa.RSAPublicNumbers(exponent, modulus).public_key()
        elif kty == "EC":
            curve = _EC_CURVES.get(key.get("crv"))  # type: ignore[arg-type]
            if curve is None:
                return ""  # never encrypted to (key_fits); secp256k1 signing keys are fine
            x, y = _b64_member(key, "x"), _b64_member(key, "y")
            if len(x) != len(y) or len(x) != CURVE_OCTETS[key["crv"]]:
                return f"{name} has coordinates of the wrong length for {key['crv']}."
            ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()).public_key()
        elif kty == "OKP":
            octets = CURVE_OCTETS.get(key.get("crv"))  # type: ignore[arg-type]
            if octets is None:
                return ""
            if len(_b64_member(key, "x")) != octets:
                return f"{name} has a public value of the wrong length for {key['crv']}."
        else:
            return ""
        _parsed_public_key(json.dumps(key, sort_keys=True))
    except Exception:  # cryptography and jwcrypto raise several types for malformed keys
        return f"{name} is not a valid {key.get('kty')} public key (for EC: its point must lie on its curve)."
    return ""


def jwks_keys_problem(jwks: dict[str, Any]) -> str:
    """The first :func:`public_key_problem` among the keys of ``jwks``, or ``""``."""
    for key in jwks.get("keys", []):
        problem = public_key_problem(key) if isinstance(key, dict) else ""
        if problem:
            return problem
    return ""


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
    problem = public_key_problem(chosen[0])
    if problem:
        raise ConfigurationError(problem)
    return chosen[0]


def _import_public(key: dict[str, Any]) -> jwk.JWK:
    # key_fits() has judged "key_ops"; jwcrypto would insist on "wrapKey" when encrypting, after
    # the code was issued, where RFC 7517 4.3 also allows "encrypt" or "deriveKey".
    usable = {member: value for member, value in key.items() if member != "key_ops"}
    try:
        return _parsed_public_key(json.dumps(usable, sort_keys=True))
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
        jwks = _fetch_once(uri)
    except FetchesBusy:
        raise  # not the URL's fault: nothing to remember
    except ConfigurationError as exc:
        shared_cache.set(failure_key, str(exc), FAILURE_CACHE_SECONDS)
        logger.warning("Client jwks_uri fetch failed: host=%s reason=%s", _host_of(uri), exc)
        raise
    shared_cache.set(key, jwks, int(jarm_settings.CLIENT_JWKS_CACHE_SECONDS))
    shared_cache.delete(failure_key)
    return jwks


class FetchesBusy(ConfigurationError):
    """:data:`MAX_CONCURRENT_FETCHES` fetches are already running in this process."""


@dataclass
class _Flight:
    """One fetch in progress, shared by every request for its URL."""

    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: str = ""


_flights: dict[str, _Flight] = {}
_flights_lock = threading.Lock()
_fetch_slots = threading.BoundedSemaphore(MAX_CONCURRENT_FETCHES)
#: A follower waits this much longer than the fetch's own deadline (parsing the answer).
_FOLLOWER_GRACE_SECONDS = 0.25


def _fetch_once(uri: str) -> dict[str, Any]:
    """``_fetch(uri)``, run at most once at a time per URL and :data:`MAX_CONCURRENT_FETCHES` in all.

    A request for a URL already being fetched waits for that fetch (no longer than its
    deadline) and shares its outcome; one finding every fetch slot taken fails at once.
    """
    with _flights_lock:
        flight = _flights.get(uri)
        leader = flight is None
        if flight is None:
            if not _fetch_slots.acquire(blocking=False):
                raise FetchesBusy("Too many jwks_uri fetches are in progress; try again shortly.")
            flight = _flights[uri] = _Flight(time.monotonic() + float(jarm_settings.CLIENT_JWKS_TIMEOUT))
    if not leader:
        if not flight.done.wait(max(0.0, flight.deadline + _FOLLOWER_GRACE_SECONDS - time.monotonic())):
            raise ConfigurationError("The jwks_uri answered too slowly.")
        if flight.result is None:
            raise ConfigurationError(flight.error or "The jwks_uri could not be fetched.")
        return dict(flight.result)
    try:
        flight.result = _fetch(uri)
    except ConfigurationError as exc:
        flight.error = str(exc)
        raise
    finally:
        with _flights_lock:
            del _flights[uri]
        _fetch_slots.release()
        flight.done.set()
    return flight.result


def _host_of(uri: str) -> str:
    """The host of ``uri`` for a log line, whatever ``uri`` holds."""
    try:
        return str(urlsplit(uri).hostname)
    except ValueError:
        return "(unparsable)"


def _allowed_address(address: str) -> bool:
    """Whether ``address`` may be connected to: globally routable, or private ones allowed."""
    if jarm_settings.CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES:
        return True
    return address_is_public(address)


#: IPv6 prefixes whose addresses carry an IPv4 address that decides where packets really go:
#: NAT64 (RFC 6052), 6to4 (RFC 3056), Teredo (RFC 4380: the client address, bits inverted).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 ::ffff:0:a.b.c.d


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses ``ip`` embeds, in every form a router or a host stack may act on."""
    value = int(ip)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    embedded = []
    if ip.ipv4_mapped is not None:
        embedded.append(ip.ipv4_mapped)
    if value >> 32 == 0:  # IPv4-compatible ::a.b.c.d (RFC 4291 2.5.5.1): deprecated, never a peer
        embedded.append(ipaddress.IPv4Address(0))
    if ip in _NAT64 or ip in _IPV4_TRANSLATED:
        embedded.append(low32)
    if ip in _SIXTOFOUR and ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip in _TEREDO and ip.teredo is not None:
        server, client = ip.teredo
        embedded += [server, client]
    return embedded


def address_is_public(address: str) -> bool:
    """Whether ``address`` is globally routable, and so is every IPv4 address it embeds."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:  # RFC 8215: local-use translation, whatever it embeds
            return False
        return all(embedded.is_global and not embedded.is_multicast for embedded in _embedded_ipv4(ip))
    return True


def _resolve(host: str, port: int, deadline: float) -> str:
    """One address of ``host`` to connect to; every address must be public (SSRF defence).

    ``getaddrinfo`` has no timeout of its own: it runs in a small pool and is waited for only
    until ``deadline``.
    """
    try:
        future = _resolver_pool().submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except RuntimeError as exc:  # interpreter shutting down
        raise ConfigurationError(f"The jwks_uri host {host!r} does not resolve.") from exc
    try:
        infos = future.result(timeout=max(0.0, deadline - time.monotonic()))
    except concurrent.futures.TimeoutError as exc:
        future.cancel()
        raise ConfigurationError("The jwks_uri answered too slowly (name resolution).") from exc
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


@functools.lru_cache(maxsize=1)
def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=MAX_CONCURRENT_FETCHES, thread_name_prefix="jwks-dns")


class _DeadlineSocket:
    """A connected socket whose every send and receive ends by ``deadline`` (monotonic clock).

    The socket timeout is set to the time left before each operation, so a peer that trickles
    its answer one byte at a time cannot stretch the fetch past the deadline. (A per-read
    timeout, as urllib3's, restarts with every byte.)
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining)

    def sendall(self, data: bytes) -> None:
        self.arm()
        self.sock.sendall(data)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        self.sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, owner: _DeadlineSocket) -> None:
        self.owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.owner.arm()
        return self.owner.sock.recv_into(buffer)


def _connect(address: str, port: int, host: str, tls: bool, deadline: float) -> _DeadlineSocket:
    # Connect to the address we checked, not to a second DNS answer (DNS rebinding).
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    wrapped = _DeadlineSocket(sock, deadline)
    try:
        wrapped.arm()
        sock.connect((address, port))
        if tls:
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            wrapped.sock = sock
            wrapped.arm()  # the ssl module bounds the whole handshake by the socket timeout
            sock.do_handshake()
    except BaseException:
        sock.close()
        raise
    return wrapped


def _fetch(uri: str) -> dict[str, Any]:
    """GET ``uri`` and parse it as a public JWK Set, all within ``CLIENT_JWKS_TIMEOUT`` seconds."""
    problem = jwks_uri_problem(uri)
    if problem:
        raise ConfigurationError(f"The jwks_uri cannot be fetched: {problem}")
    parts = urlsplit(uri)
    host = str(parts.hostname)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    deadline = time.monotonic() + float(jarm_settings.CLIENT_JWKS_TIMEOUT)
    max_bytes = int(jarm_settings.CLIENT_JWKS_MAX_BYTES)
    address = _resolve(host, port, deadline)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Accept: application/jwk-set+json, application/json\r\nAccept-Encoding: identity\r\n"
        "Connection: close\r\nUser-Agent: django_jarm\r\n\r\n"
    ).encode("ascii")
    connection: _DeadlineSocket | None = None
    try:
        connection = _connect(address, port, host, tls, deadline)
        connection.sendall(request)
        response = http.client.HTTPResponse(connection, method="GET")  # type: ignore[arg-type]
        try:
            response.begin()
            if response.status != 200:
                raise ConfigurationError(f"The jwks_uri answered HTTP {response.status} (redirects are not followed).")
            body = b""
            while len(body) <= max_bytes:
                chunk = response.read(min(8192, max_bytes + 1 - len(body)))
                if not chunk:
                    break
                body += chunk
            if len(body) > max_bytes:
                raise ConfigurationError(f"The jwks_uri answered more than {max_bytes} bytes.")
        finally:
            response.close()
    except TimeoutError as exc:
        raise ConfigurationError("The jwks_uri answered too slowly.") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ConfigurationError(f"The jwks_uri could not be fetched ({type(exc).__name__}).") from exc
    finally:
        if connection is not None:
            connection.close()
    try:
        jwks = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[[[[…" nesting
        raise ConfigurationError("The jwks_uri did not answer JSON.") from exc
    problem = jwks_problem(jwks) or jwks_keys_problem(jwks)
    if problem:
        raise ConfigurationError(f"The jwks_uri did not answer a usable public JWK Set: {problem}")
    return dict(jwks)
