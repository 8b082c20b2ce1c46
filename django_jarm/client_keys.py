"""Client encryption keys: from ``jwks``, from ``jwks_uri`` (fetched safely, cached), or
derived from the client secret (OpenID Connect Core 10.2).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import http.client
import io
import json
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jwcrypto import jwk
from jwcrypto.common import base64url_encode

from . import state
from .conf import SYMMETRIC_ENCRYPTION_ALGS, jarm_settings
from .exceptions import ClientKeysUnreachable, ConfigurationError, KeyUnavailable
from .validation import (
    ClientMetadata,
    address_is_public,
    jwks_keys_problem,
    jwks_problem,
    jwks_uri_problem,
    secret_key_octets,
    select_key,
    symmetric_encryption_secret_problem,
)

logger = logging.getLogger(__name__)

#: A failed fetch is remembered this long, so a dead jwks_uri does not hold a worker per request.
FAILURE_CACHE_SECONDS = 30
#: At most one forced refresh (no suitable key in the cached set) per client per this period.
REFRESH_INTERVAL_SECONDS = 60
#: At most this many jwks_uri fetches run at once in a process; past it a request fails at once.
MAX_CONCURRENT_FETCHES = 4


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
    # key_fits() has judged "key_ops"; jwcrypto would insist on "wrapKey" when encrypting, after
    # the code was issued, where RFC 7517 4.3 also allows "encrypt" or "deriveKey".
    usable = {member: value for member, value in key.items() if member != "key_ops"}
    try:
        return _parsed_public_key(json.dumps(usable, sort_keys=True))
    except Exception as exc:  # jwcrypto raises several types for malformed keys
        raise KeyUnavailable(f"The client's key {key.get('kid', '')!r} cannot be read.") from exc


@functools.lru_cache(maxsize=4096)
def _parsed_public_key(serialized: str) -> jwk.JWK:
    """Parsed once per process: keyed by the key's content, so it never needs invalidating."""
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
        return _inline_key(application, metadata.jwks, alg, enc)
    if metadata.jwks_uri:
        chosen = _select_from_uri(metadata.jwks_uri, alg)
        # Parsed here, before any code exists: a key jwcrypto cannot use fails now, not at encrypt time.
        return EncryptionKey(alg, enc, chosen.get("kid"), _import_public(chosen))
    raise KeyUnavailable(f"{alg} encrypts to the client's public key: set its JWK Set or URL.")


def settings_encryption_key(application: Any, settings: Any) -> EncryptionKey:
    """``get_encryption_key(application, settings.metadata())`` for the snapshot's stored settings.

    A key chosen from the row's own JWK Set is kept with the row object itself, once per
    snapshot, with the values it was chosen from: the request path then does not build the
    metadata again. A saved row moves the state version (a new snapshot, a new row object); the
    row's values changed in place, or the enabled algorithms narrowed, choose afresh. Keys
    derived from the client secret, or fetched from the ``jwks_uri``, are chosen for every
    response as before.
    """
    snapshot = state.current()
    # What the choice depends on: the row, its stored values, and the enabled algorithms.
    stored = (
        settings.jwks,
        settings.authorization_encrypted_response_alg,
        settings.authorization_encrypted_response_enc,
    )
    found = snapshot.recall("settings-encryption-key", application.pk)
    if (
        found is not None
        and found[0] is settings
        and all(kept is now for kept, now in zip(found[1], stored, strict=True))
        and found[2].alg in jarm_settings.encryption_algs
        and found[2].enc in jarm_settings.encryption_encs
    ):
        key: EncryptionKey = found[2]
        return key
    metadata = settings.metadata()
    key = get_encryption_key(application, metadata)
    if metadata.jwks and metadata.authorization_encrypted_response_alg not in SYMMETRIC_ENCRYPTION_ALGS:
        snapshot.remember("settings-encryption-key", application.pk, (settings, stored, key))
    return key


def _inline_key(application: Any, jwks: Any, alg: str, enc: str) -> EncryptionKey:
    """The key chosen from the client's stored ``jwks``, once per snapshot.

    Kept with the very ``jwks`` object it was chosen from (the snapshot's client settings hold
    it), so any other JWK Set (an unsaved form's, say) is chosen from afresh.
    """
    snapshot = state.current()
    memo_key = (application.pk, alg, enc)
    found = snapshot.recall("client-encryption-key", memo_key)
    if found is not None and found[0] is jwks:
        key: EncryptionKey = found[1]
        return key
    problem = jwks_problem(jwks)  # a row saved without clean()
    if problem:
        raise KeyUnavailable(problem)
    chosen = select_key(jwks, alg)
    # Parsed here, before any code exists: a key jwcrypto cannot use fails now, not at encrypt time.
    key = EncryptionKey(alg, enc, chosen.get("kid"), _import_public(chosen))
    snapshot.remember("client-encryption-key", memo_key, (jwks, key))
    return key


# jwks_uri ------------------------------------------------------------------------------
#
# Fetched sets and failures live in the state snapshot (dropped with it when any setting or
# client changes), each with its own expiry: CLIENT_JWKS_CACHE_SECONDS for a set,
# FAILURE_CACHE_SECONDS for a failure.


def _select_from_uri(uri: str, alg: str) -> dict[str, Any]:
    snapshot = state.current()
    kept = snapshot.recall("client-jwks", uri) is not None
    jwks = fetch_client_jwks(uri)
    try:
        return select_key(jwks, alg)
    except KeyUnavailable:
        # The client may have rotated its keys since we fetched them: one refresh, rate-limited,
        # and only of a set kept from earlier (a set fetched just now is as fresh as it gets, and
        # a second fetch would double the request's wait).
        if not kept or snapshot.recall("client-jwks-refreshed", uri):
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
        jwks = _fetch_once(uri)
    except FetchesBusy:
        raise  # not the URL's fault: nothing to remember
    except ConfigurationError as exc:
        snapshot.remember("client-jwks-failure", uri, str(exc), ttl=FAILURE_CACHE_SECONDS)
        logger.warning("Client jwks_uri fetch failed: host=%s reason=%s", _host_of(uri), exc)
        raise ClientKeysUnreachable(str(exc)) from exc
    snapshot.remember("client-jwks", uri, jwks, ttl=jarm_settings.CLIENT_JWKS_CACHE_SECONDS)
    snapshot.forget("client-jwks-failure", uri)
    return jwks


class FetchesBusy(ClientKeysUnreachable):
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
