"""Client metadata rules (JARM 3, OpenID Connect Core 10, RFC 7591), shared by the model's
``clean()``, the admin, dynamic client registration and the system checks.

Every function here is pure: it looks at values (and at the DOT application they belong to) and
says what is wrong, in words an operator or a registering client can act on.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.contrib.auth.hashers import identify_hasher
from django.utils.translation import gettext as _
from jwcrypto import jwk
from jwcrypto.common import base64url_decode
from oauth2_provider.models import AbstractApplication

from .conf import (
    ALL_ENCRYPTION_ALGS,
    ALL_ENCRYPTION_ENCS,
    ALL_RESPONSE_MODES,
    ALL_SIGNING_ALGS,
    SYMMETRIC_ENCRYPTION_ALGS,
    SYMMETRIC_SIGNING_ALGS,
    jarm_settings,
)
from .exceptions import KeyUnavailable
from .profiles import client_settings_problems

#: JWK members that only a private or symmetric key has (RFC 7518 6.2.2, 6.3.2, 6.4; RFC 8037).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

#: Minimum client_secret length in octets for HMAC signing (OpenID Connect Core 16.19).
HMAC_MIN_SECRET_OCTETS = {"HS256": 32, "HS384": 48, "HS512": 64}

#: Key length in octets each symmetric key management algorithm needs (RFC 7518 4.4, 4.7).
KEY_WRAP_OCTETS = {"A128KW": 16, "A192KW": 24, "A256KW": 32, "A128GCMKW": 16, "A192GCMKW": 24, "A256GCMKW": 32}
#: Key length in octets of each content encryption algorithm, used by ``dir`` (RFC 7518 5.1).
ENC_KEY_OCTETS = {
    "A128CBC-HS256": 32,
    "A192CBC-HS384": 48,
    "A256CBC-HS512": 64,
    "A128GCM": 16,
    "A192GCM": 24,
    "A256GCM": 32,
}
#: Curves each asymmetric key type can receive ECDH-ES on.
EC_CURVES = frozenset({"P-256", "P-384", "P-521"})
OKP_CURVES = frozenset({"X25519"})

DEFAULT_ENC = "A128CBC-HS256"
MAX_JWKS_URI_LENGTH = 2000


@dataclass(frozen=True)
class ClientMetadata:
    """The JARM client metadata of one client, as stored in ``ClientSettings`` or registered."""

    authorization_signed_response_alg: str = ""
    authorization_encrypted_response_alg: str = ""
    authorization_encrypted_response_enc: str = ""
    jwks: Any = None
    jwks_uri: str = ""
    response_modes: Any = field(default_factory=list)
    require_jarm: bool = False

    @property
    def encryption_enc(self) -> str:
        """JARM 3: ``enc`` defaults to A128CBC-HS256 when ``alg`` is set."""
        if not self.authorization_encrypted_response_alg:
            return ""
        return self.authorization_encrypted_response_enc or DEFAULT_ENC


Errors = dict[str, list[str]]


def client_metadata_errors(metadata: ClientMetadata, application: Any | None) -> Errors:
    """Everything wrong with ``metadata`` for ``application`` (``None``: not created yet), by field."""
    # The FAPI profile's refusals first: they name the fix; the generic "not enabled" then stays quiet.
    errors: Errors = {
        name: [message]
        for name, message in client_settings_problems(jarm_settings.profile, dataclasses.asdict(metadata)).items()
    }

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    alg = metadata.authorization_signed_response_alg
    # Anything not a name in the list ("none" never is, nor any value that is not a string).
    if alg not in ("", *ALL_SIGNING_ALGS):
        add("authorization_signed_response_alg", _("Unsupported signing algorithm."))
    elif alg and alg not in jarm_settings.signing_algs:
        if "authorization_signed_response_alg" not in errors:
            add(
                "authorization_signed_response_alg",
                _("%(alg)s is not enabled on this server (JARM['SIGNING_ALGS_SUPPORTED'] or the profile).")
                % {"alg": alg},
            )
    elif alg in SYMMETRIC_SIGNING_ALGS and application is not None:
        problem = hmac_secret_problem(application, alg)
        if problem:
            add("authorization_signed_response_alg", problem)

    encryption_alg = metadata.authorization_encrypted_response_alg
    enc = metadata.authorization_encrypted_response_enc
    if encryption_alg not in ("", *ALL_ENCRYPTION_ALGS):
        add("authorization_encrypted_response_alg", _("Unsupported encryption algorithm (never RSA1_5)."))
    elif encryption_alg and encryption_alg not in jarm_settings.encryption_algs:  # noqa: SIM102
        if "authorization_encrypted_response_alg" not in errors:
            add(
                "authorization_encrypted_response_alg",
                _("%(alg)s is not enabled on this server (JARM['ENCRYPTION_ALGS_SUPPORTED'] or the profile).")
                % {"alg": encryption_alg},
            )
    if enc not in ("", *ALL_ENCRYPTION_ENCS):
        add("authorization_encrypted_response_enc", _("Unsupported content encryption."))
    elif enc and not encryption_alg:
        # JARM 3: authorization_encrypted_response_enc requires authorization_encrypted_response_alg.
        add(
            "authorization_encrypted_response_alg",
            _("Choose an encryption algorithm, or clear the content encryption."),
        )
    elif enc and enc not in jarm_settings.encryption_encs:
        add(
            "authorization_encrypted_response_enc",
            _("%(enc)s is not enabled on this server (JARM['ENCRYPTION_ENCS_SUPPORTED']).") % {"enc": enc},
        )

    jwks, jwks_uri = metadata.jwks, metadata.jwks_uri
    if jwks not in (None, "", {}):
        problem = jwks_problem(jwks)
        if problem:
            add("jwks", problem)
    if not isinstance(jwks_uri, str):
        add("jwks_uri", _("The JWK Set URL must be a string."))
    elif jwks_uri:
        if jwks:
            add("jwks_uri", _("Give either a JWK Set or a JWK Set URL, not both."))
        problem = jwks_uri_problem(jwks_uri)
        if problem:
            add("jwks_uri", problem)

    if not errors and encryption_alg:
        for name, message in encryption_key_errors(metadata, application):
            add(name, message)

    modes = metadata.response_modes
    if not isinstance(modes, list) or any(
        not isinstance(mode, str) or mode not in ALL_RESPONSE_MODES for mode in modes
    ):
        add(
            "response_modes",
            _("Give a list of response modes among: %(modes)s.") % {"modes": ", ".join(ALL_RESPONSE_MODES)},
        )
    else:
        for mode in modes:
            if mode not in jarm_settings.response_modes:
                offered = ", ".join(jarm_settings.response_modes)
                add(
                    "response_modes",
                    _("This server does not offer %(mode)s; it offers %(modes)s.") % {"mode": mode, "modes": offered},
                )
    if not isinstance(metadata.require_jarm, bool):
        add("require_jarm", _("require_jarm is true or false."))
    return errors


def encryption_key_errors(metadata: ClientMetadata, application: Any | None) -> list[tuple[str, str]]:
    """Why no encryption key can be found for ``metadata`` (checked without fetching ``jwks_uri``)."""
    alg = metadata.authorization_encrypted_response_alg
    if alg in SYMMETRIC_ENCRYPTION_ALGS:
        if application is None:
            return []
        problem = symmetric_encryption_secret_problem(application, alg, metadata.encryption_enc)
        return [("authorization_encrypted_response_alg", problem)] if problem else []
    if not metadata.jwks and not metadata.jwks_uri:
        message = _("%(alg)s encrypts to the client's public key: give its JWK Set or JWK Set URL.") % {"alg": alg}
        return [("jwks", message)]
    if metadata.jwks:
        problem = jwks_keys_problem(metadata.jwks)
        if problem:
            return [("jwks", problem)]
        try:
            select_key(metadata.jwks, alg)
        except KeyUnavailable as exc:
            return [("jwks", str(exc))]
    return []


# Client secrets ----------------------------------------------------------------------------


def hmac_secret_problem(application: Any, alg: str) -> str:
    """Why ``application``'s client secret cannot key ``alg``, or ``""`` when it can."""
    # OpenID Connect Core 10.1 and 16.19: the raw secret is the MAC key, as long as the key.
    return secret_problem(application, alg, HMAC_MIN_SECRET_OCTETS[alg])


def secret_key_octets(alg: str, enc: str) -> int:
    """How many octets of key a secret-derived key for ``alg``/``enc`` needs (0: none can be)."""
    return (ENC_KEY_OCTETS.get(enc) if alg == "dir" else KEY_WRAP_OCTETS.get(alg)) or 0


def symmetric_encryption_secret_problem(application: Any, alg: str, enc: str) -> str:
    """Why ``application``'s secret cannot derive an ``alg``/``enc`` key, or ``""``."""
    needed = secret_key_octets(alg, enc)
    if not needed:
        return _("No secret-derived key exists for %(alg)s/%(enc)s.") % {"alg": alg, "enc": enc}
    # OpenID Connect Core 10.2 and 16.19: the key is derived from the secret, which must hold
    # at least as many octets as the key.
    return secret_problem(application, alg, needed)


def secret_problem(application: Any, alg: str, needed: int) -> str:
    """Why ``application``'s stored secret cannot be ``needed`` octets of key material for ``alg``."""
    if application.client_type != AbstractApplication.CLIENT_CONFIDENTIAL:
        return _("%(alg)s needs a confidential client; public clients have no secret.") % {"alg": alg}
    secret = application.client_secret or ""
    if getattr(application, "hash_client_secret", True) or is_hashed(secret):
        return _(
            "%(alg)s uses the client secret as key material, and this client stores it hashed. Turn off "
            "'hash client secret' and set a new secret, or choose an asymmetric algorithm."
        ) % {"alg": alg}
    if len(secret.encode("utf-8")) < needed:
        return _("%(alg)s needs a client secret of at least %(n)d octets (OpenID Connect Core 16.19).") % {
            "alg": alg,
            "n": needed,
        }
    return ""


def is_hashed(secret: str) -> bool:
    """Whether ``secret`` is a Django password hash (DOT hashes client secrets by default)."""
    if not secret:
        return False
    try:
        identify_hasher(secret)
    except ValueError:
        return False
    return True


# JWK Sets ----------------------------------------------------------------------------------


def jwks_problem(value: Any) -> str:
    """Why ``value`` is not an acceptable public JWK Set, or ``""``."""
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        return _('A JWK Set is a JSON object with a "keys" list.')
    for key in value["keys"]:
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            return _('Every key needs a "kty".')
        if PRIVATE_JWK_MEMBERS & key.keys():
            return _("The JWK Set holds private or symmetric key material; publish public keys only.")
        # RFC 7517 4: these members are strings (key_ops a list of strings) when present.
        for member in ("kid", "use", "alg", "crv", "n", "e", "x", "y"):
            if member in key and not isinstance(key[member], str):
                return _('The "%(member)s" member of a key must be a string.') % {"member": member}
        operations = key.get("key_ops")
        if operations is not None and not (
            isinstance(operations, list) and all(isinstance(operation, str) for operation in operations)
        ):
            return _('"key_ops" must be a list of strings.')
    return ""


def key_fits(key: Mapping[str, Any], alg: str) -> bool:
    """Whether the public JWK ``key`` can receive a JWE with key management ``alg``."""
    if jwks_problem({"keys": [dict(key)]}):
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


def select_key(jwks: Mapping[str, Any], alg: str) -> dict[str, Any]:
    """The one key of ``jwks`` to encrypt to with ``alg``; :class:`KeyUnavailable` if none or several.

    Keys marked with ``alg`` win over unmarked ones; more than one equally good key is ambiguous
    (OpenID Connect Core 10.2: the client could not tell which one was used without a kid).
    """
    fitting = [key for key in jwks.get("keys", []) if isinstance(key, dict) and key_fits(key, alg)]
    marked = [key for key in fitting if key.get("alg") == alg]
    chosen = marked or fitting
    if not chosen:
        raise KeyUnavailable(
            _("The client's JWK Set has no key for %(alg)s (use 'enc' or absent, of the matching type).") % {"alg": alg}
        )
    if len(chosen) > 1:
        raise KeyUnavailable(
            _('The client\'s JWK Set has %(n)d keys that fit %(alg)s; mark one with "alg": "%(alg)s".')
            % {"n": len(chosen), "alg": alg}
        )
    # FAPI 1.0 Advanced 8.6, FAPI 2.0 Security Profile 5.4.1: no weak or invalid keys.
    problem = public_key_problem(chosen[0])
    if problem:
        raise KeyUnavailable(problem)
    return chosen[0]


# Client public keys ------------------------------------------------------------------------

#: RSA modulus sizes accepted for client keys: FAPI 1.0 Advanced 8.6 and FAPI 2.0 Security Profile
#: 5.4.1 require at least 2048 bits; the upper bound keeps one encryption cheap.
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 16384
#: Octets of the coordinates of each curve (RFC 7518 6.2.1.2, RFC 8037 2).
CURVE_OCTETS = {"P-256": 32, "P-384": 48, "P-521": 66, "X25519": 32, "X448": 56, "Ed25519": 32, "Ed448": 57}
_EC_CURVES: dict[str, type[ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}


def _b64_member(key: dict[str, Any], member: str) -> bytes:
    value = key.get(member)
    if not isinstance(value, str) or not value or not set(value) <= _BASE64URL:
        raise ValueError(f'"{member}" is missing or not base64url')
    return base64url_decode(value)


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def public_key_problem(key: Mapping[str, Any]) -> str:
    """Why the public JWK ``key`` is too weak or unusable to encrypt to, or ``""`` (remembered per key)."""
    try:
        serialized = json.dumps(key, sort_keys=True)
    except (TypeError, ValueError):
        return _("A key of the client is not valid JSON.")
    return _public_key_problem(serialized)


@functools.lru_cache(maxsize=1024)
def _public_key_problem(serialized: str) -> str:
    """A pure function of the key's content: remembering its answer can never be stale."""
    return _check_public_key(json.loads(serialized))


def _check_public_key(key: dict[str, Any]) -> str:
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
        jwk.JWK.from_json(json.dumps({m: val for m, val in key.items() if m != "key_ops"}))
    except Exception:  # cryptography and jwcrypto raise several types for malformed keys
        return f"{name} is not a valid {key.get('kty')} public key (for EC: its point must lie on its curve)."
    return ""


def jwks_keys_problem(jwks: Mapping[str, Any]) -> str:
    """The first :func:`public_key_problem` among the keys of ``jwks``, or ``""``."""
    for key in jwks.get("keys", []):
        problem = public_key_problem(key) if isinstance(key, dict) else ""
        if problem:
            return problem
    return ""


# jwks_uri ----------------------------------------------------------------------------------


def jwks_uri_problem(uri: str) -> str:
    """Why the jwks_uri fetcher could not use ``uri``, or ``""`` when it can.

    The one list of rules: ``clean()`` refuses what the fetcher would, and the fetcher checks
    again before connecting (a row saved without ``clean()``).
    """
    if not isinstance(uri, str) or not uri:
        return str(_("Give the JWK Set URL as text."))
    if len(uri) > MAX_JWKS_URI_LENGTH:
        return str(_("The JWK Set URL is longer than %(n)d characters.") % {"n": MAX_JWKS_URI_LENGTH})
    if not uri.isascii() or any(not 0x21 <= ord(char) <= 0x7E for char in uri):
        return str(_("The JWK Set URL must be ASCII without spaces or control characters (percent-encode them)."))
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return str(_("The JWK Set URL cannot be parsed (check its host and port)."))
    allow_http = jarm_settings.CLIENT_JWKS_ALLOW_HTTP
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        return str(_("The JWK Set URL must use https."))
    if "@" in parts.netloc:
        return str(_("The JWK Set URL must not carry a user name or password."))
    if not parts.hostname:
        return str(_("The JWK Set URL has no host."))
    if port == 0 or parts.netloc.endswith(":"):
        return str(_("The JWK Set URL has an invalid port (1-65535)."))
    if "%" in parts.hostname or "[" in parts.hostname:
        return str(_("The JWK Set URL has an invalid host."))
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return str(_("The JWK Set URL has an invalid host."))
    if parts.fragment or uri.endswith("#"):
        return str(_("The JWK Set URL must not have a fragment."))
    if not jarm_settings.CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES:
        # Known without DNS; a name resolving to such an address is refused when fetched.
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            literal = None
        if literal is not None and not address_is_public(str(literal)):
            return str(_("The JWK Set URL's host is not a public address."))
        host = parts.hostname.rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost"):
            return str(_("The JWK Set URL's host is a loopback name."))
    return ""


#: NAT64 (RFC 6052): the low 32 bits are the IPv4 address packets really go to.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Never a peer, whatever a Python version's tables say: ::/96 (unspecified, loopback and the
#: deprecated IPv4-compatible ::a.b.c.d, RFC 4291 2.5), IPv4-translated ::ffff:0:a.b.c.d
#: (RFC 2765), Teredo 2001::/32 (RFC 4380: a relay, the client hidden in inverted bits),
#: local-use NAT64 (RFC 8215), deprecated site-local fec0::/10 (RFC 3879), SRv6 SIDs 5f00::/16
#: (RFC 9602) and documentation 3fff::/20 (RFC 9637), whatever they embed.
_NEVER_PEERS = tuple(
    ipaddress.ip_network(net)
    for net in ("::/96", "::ffff:0:0:0/96", "2001::/32", "64:ff9b:1::/48", "fec0::/10", "5f00::/16", "3fff::/20")
)


def _ipv4_is_public(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not ip.is_multicast


def address_is_public(address: str) -> bool:
    """Whether ``address`` is globally routable, and so is any IPv4 address it embeds.

    An IPv6 address that stands for an IPv4 address (IPv4-mapped) or carries one routers act
    on (NAT64, RFC 6052; 6to4, RFC 3056) is judged by that IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address)  # a zone ("%eth0") only ever follows a scoped address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_is_public(ip)
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d: the IPv4 host itself, as a dual stack names it
        return _ipv4_is_public(ip.ipv4_mapped)
    if any(ip in network for network in _NEVER_PEERS):
        return False
    if ip.sixtofour is not None:
        # Routed by its IPv4 address (Python 3.13 calls the whole prefix non-global).
        return _ipv4_is_public(ip.sixtofour)
    if not ip.is_global or ip.is_multicast:
        return False
    if ip in _NAT64:
        return _ipv4_is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return True
