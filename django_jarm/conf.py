"""Settings for django_jarm, read from the ``JARM`` dict in the Django settings.

Values are read at call time through :data:`jarm_settings` and cached until Django's
``setting_changed`` signal fires for ``JARM`` (``override_settings`` in tests) or
:meth:`JARMSettings.reload` is called. Nothing is bound at import time.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .profiles import PROFILES as PROFILE_TABLE
from .profiles import Profile, get_profile

SETTING_NAME = "JARM"

#: JWS algorithms django_jarm can sign with. ``none`` is never among them.
ASYMMETRIC_SIGNING_ALGS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    # RFC 9864: the fully specified name of EdDSA with Ed25519; the same server key signs both.
    "Ed25519",
)
SYMMETRIC_SIGNING_ALGS = ("HS256", "HS384", "HS512")
ALL_SIGNING_ALGS = ASYMMETRIC_SIGNING_ALGS + SYMMETRIC_SIGNING_ALGS

#: JWE key management algorithms (RSA1_5 is deliberately absent: FAPI 1.0 Advanced 8.6.1;
#: jwcrypto has no RSA-OAEP-384/512).
ASYMMETRIC_ENCRYPTION_ALGS = (
    "RSA-OAEP",
    "RSA-OAEP-256",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
)
SYMMETRIC_ENCRYPTION_ALGS = (
    "A128KW",
    "A192KW",
    "A256KW",
    "A128GCMKW",
    "A192GCMKW",
    "A256GCMKW",
    "dir",
)
ALL_ENCRYPTION_ALGS = ASYMMETRIC_ENCRYPTION_ALGS + SYMMETRIC_ENCRYPTION_ALGS
ALL_ENCRYPTION_ENCS = (
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
    "A128GCM",
    "A192GCM",
    "A256GCM",
)

JWT_RESPONSE_MODES = ("query.jwt", "fragment.jwt", "form_post.jwt", "jwt")
PLAIN_RESPONSE_MODES = ("query", "fragment", "form_post")
ALL_RESPONSE_MODES = PLAIN_RESPONSE_MODES + JWT_RESPONSE_MODES

PROFILES = tuple(PROFILE_TABLE)

DEFAULTS: dict[str, Any] = {
    # Issuer identifier put in the ``iss`` claim and in both discovery documents.
    # None: DOT's issuer (OIDC issuer when OIDC is on, else the RFC 8414 issuer).
    "ISSUER": None,
    # Seconds between ``iat`` and ``exp`` of a response JWT (JARM 2.1 recommends <= 600).
    "RESPONSE_LIFETIME": 120,
    # JWS algorithm for clients without ``authorization_signed_response_alg`` (JARM 3: RS256).
    "DEFAULT_SIGNING_ALG": "RS256",
    # JWS algorithms the server may use; HS* must be listed explicitly to be enabled.
    "SIGNING_ALGS_SUPPORTED": list(ASYMMETRIC_SIGNING_ALGS),
    "ENCRYPTION_ALGS_SUPPORTED": list(ALL_ENCRYPTION_ALGS),
    "ENCRYPTION_ENCS_SUPPORTED": list(ALL_ENCRYPTION_ENCS),
    "RESPONSE_MODES_SUPPORTED": list(ALL_RESPONSE_MODES),
    # Refuse plain (non-JWT) response modes for every client.
    "REQUIRE_JARM": False,
    "PROFILE": None,
    "INCLUDE_IAT": True,
    # HTTP status of response redirects: 302, or 303 as FAPI 2.0 advises.
    "REDIRECT_STATUS": 302,
    # How long a process trusts its view of the server keys before re-reading them.
    "KEY_CACHE_SECONDS": 60,
    "CLIENT_JWKS_CACHE_SECONDS": 300,
    "CLIENT_JWKS_TIMEOUT": 3.0,
    "CLIENT_JWKS_MAX_BYTES": 65536,
    "CLIENT_JWKS_ALLOW_HTTP": False,
    "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": False,
    # Secret from which the key encrypting stored private keys is derived.
    # None: derived from SECRET_KEY.
    "KEY_ENCRYPTION_SECRET": None,
    # Earlier secrets, still accepted for reading stored keys (SECRET_KEY_FALLBACKS when
    # KEY_ENCRYPTION_SECRET is None). `manage.py jarm_keys reencrypt` moves keys to the current one.
    "KEY_ENCRYPTION_SECRET_FALLBACKS": [],
}


class JARMSettings:
    """Attribute access to the ``JARM`` setting, falling back to :data:`DEFAULTS`."""

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults if defaults is not None else DEFAULTS
        self._cached: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, SETTING_NAME, None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Invalid JARM setting: {name!r}")
        cached = self._cached
        if name not in cached:
            cached[name] = self.user_settings.get(name, self.defaults[name])
        return cached[name]

    def reload(self) -> None:
        self._cached.clear()

    # Derived values -------------------------------------------------------------------

    @property
    def profile(self) -> Profile:
        """The FAPI profile enforced (``NO_PROFILE`` when ``PROFILE`` is None)."""
        return get_profile(self.PROFILE)

    @property
    def signing_algs(self) -> list[str]:
        """Signing algorithms enabled by settings (and by the profile, when one is set)."""
        algs = [alg for alg in self.SIGNING_ALGS_SUPPORTED if alg in ALL_SIGNING_ALGS]
        profile_algs = self.profile.signing_algs
        if profile_algs is not None:
            algs = [alg for alg in algs if alg in profile_algs]
        return algs

    @property
    def default_signing_alg(self) -> str:
        """``DEFAULT_SIGNING_ALG``; under a profile, when not set, the first algorithm it allows."""
        profile_algs = self.profile.signing_algs
        if "DEFAULT_SIGNING_ALG" not in self.user_settings and profile_algs is not None:
            return (self.signing_algs or profile_algs)[0]
        return str(self.DEFAULT_SIGNING_ALG)

    @property
    def encryption_algs(self) -> list[str]:
        """Key management algorithms enabled by settings (never RSA1_5; no symmetric ones under FAPI 2)."""
        allowed = self.profile.encryption_algs or ALL_ENCRYPTION_ALGS
        return [alg for alg in self.ENCRYPTION_ALGS_SUPPORTED if alg in ALL_ENCRYPTION_ALGS and alg in allowed]

    @property
    def encryption_encs(self) -> list[str]:
        return [enc for enc in self.ENCRYPTION_ENCS_SUPPORTED if enc in ALL_ENCRYPTION_ENCS]

    @property
    def response_modes(self) -> list[str]:
        return [mode for mode in self.RESPONSE_MODES_SUPPORTED if mode in ALL_RESPONSE_MODES]

    @property
    def response_lifetime(self) -> int:
        """``RESPONSE_LIFETIME``, never beyond the profile's bound (check E004 reports a larger value)."""
        bound = self.profile.max_response_lifetime
        lifetime = int(self.RESPONSE_LIFETIME)
        return lifetime if bound is None else min(lifetime, bound)

    @property
    def redirect_status(self) -> int:
        """``REDIRECT_STATUS``; when not set, the profile's (303 under FAPI 2.0)."""
        if "REDIRECT_STATUS" not in self.user_settings:
            return self.profile.redirect_status
        return int(self.REDIRECT_STATUS)


jarm_settings = JARMSettings()


_epoch = 0


def settings_epoch() -> int:
    """Changes whenever a setting changes at run time (in practice: in tests)."""
    return _epoch


@receiver(setting_changed)
def _reload_jarm_settings(*, setting: str, **kwargs: Any) -> None:
    global _epoch
    _epoch += 1
    if setting in (SETTING_NAME, "SECRET_KEY"):
        jarm_settings.reload()
