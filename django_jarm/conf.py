"""Settings for django_jarm, read from the ``JARM`` dict in the Django settings.

Every setting is one typed property of :data:`jarm_settings` that reads ``settings.JARM`` each
time it is used: nothing is bound at import time, so tests change values with a plain
``override_settings(JARM={...})``. The derived values the request path reads on every response
(the enabled algorithms, the profile, the response lifetime…) are computed once per ``JARM``
dict: a different dict recomputes them, and so does :meth:`JARMSettings.reload` (called on
Django's ``setting_changed``) after a change in place. Values of the wrong type are reported by
the system checks (``django_jarm.E002``); the properties return the documented type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from oauth2_provider.settings import oauth2_settings

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

#: FAPI 1.0 Advanced 8.6: PS256 or ES256. FAPI 2.0 Security Profile 5.4.1: also EdDSA.
PROFILE_SIGNING_ALGS: dict[str | None, tuple[str, ...]] = {
    "fapi1-advanced": ("PS256", "ES256"),
    "fapi2-message-signing": ("PS256", "ES256", "EdDSA"),
}

DEFAULTS: dict[str, Any] = {
    # --- The response JWT ---------------------------------------------------------------
    # Issuer identifier in the `iss` claim and in both discovery documents.
    # None: DOT's issuer (its OIDC issuer when OIDC is on, else its RFC 8414 issuer).
    "ISSUER": None,
    # Seconds from `iat` to `exp` (JARM 2.1 recommends at most 600).
    "RESPONSE_LIFETIME": 120,
    # Whether the JWT carries `iat` (JARM 2.1 allows it; the conformance suite checks it when present).
    "INCLUDE_IAT": True,
    # --- Algorithms and modes the server offers -------------------------------------------
    # JWS algorithm for clients without `authorization_signed_response_alg` (JARM 3: RS256).
    "DEFAULT_SIGNING_ALG": "RS256",
    # JWS algorithms the server may use; HS256/384/512 must be listed to be enabled.
    "SIGNING_ALGS_SUPPORTED": list(ASYMMETRIC_SIGNING_ALGS),
    # JWE `alg` and `enc` values clients may choose.
    "ENCRYPTION_ALGS_SUPPORTED": list(ALL_ENCRYPTION_ALGS),
    "ENCRYPTION_ENCS_SUPPORTED": list(ALL_ENCRYPTION_ENCS),
    # Response modes served (and advertised in discovery).
    "RESPONSE_MODES_SUPPORTED": list(ALL_RESPONSE_MODES),
    # --- Policy ---------------------------------------------------------------------------
    # Refuse plain (non-JWT) response modes for every client.
    "REQUIRE_JARM": False,
    # None, "fapi1-advanced" or "fapi2-message-signing": enforced at the authorization endpoint.
    "PROFILE": None,
    # HTTP status of response redirects: 302, or 303 as FAPI 2.0 advises.
    "REDIRECT_STATUS": 302,
    # The hooks deciding one response (policy, algorithm, claims): an import string of a
    # django_jarm.authorization.ResponsePlanner subclass. The endpoint and the admin preview use it.
    "RESPONSE_PLANNER": "django_jarm.authorization.ResponsePlanner",
    # --- Consistency across processes (README: "Consistency guarantees") -------------------
    # A committed change of keys or client settings applies in every process within this many
    # seconds: each process compares its snapshot with the version row at most this often.
    "STATE_REFRESH_SECONDS": 1.0,
    # `max-age` of the JWK Set response, i.e. how long clients may cache it. None: DOT's
    # OIDC_JWKS_MAX_AGE_SECONDS. Key rotation waits for this window (publish before sign,
    # keep after sign).
    "JWKS_MAX_AGE": None,
    # --- Client keys from jwks_uri ----------------------------------------------------------
    # How long a fetched client JWK Set is used before it is fetched again.
    "CLIENT_JWKS_CACHE_SECONDS": 300,
    # Wall-clock deadline of one fetch, in seconds (connect, headers and body together).
    "CLIENT_JWKS_TIMEOUT": 3.0,
    # Largest JWK Set document accepted, in bytes.
    "CLIENT_JWKS_MAX_BYTES": 65536,
    # Allow http:// jwks_uri (development only).
    "CLIENT_JWKS_ALLOW_HTTP": False,
    # Allow jwks_uri hosts on loopback, private or link-local addresses (development only).
    "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": False,
    # --- Server keys at rest --------------------------------------------------------------------
    # Secret from which the key encrypting stored private keys is derived. None: SECRET_KEY.
    "KEY_ENCRYPTION_SECRET": None,
    # Earlier secrets, still accepted for reading stored keys (SECRET_KEY_FALLBACKS when
    # KEY_ENCRYPTION_SECRET is None). `manage.py jarm_keys reencrypt` moves keys to the current one.
    "KEY_ENCRYPTION_SECRET_FALLBACKS": [],
}

#: Settings that no longer exist: name -> what to do instead (system check django_jarm.W008).
REMOVED_SETTINGS: dict[str, str] = {
    "KEY_CACHE_SECONDS": "Remove it: every process cache now follows STATE_REFRESH_SECONDS (default 1 s).",
}


def _as_list(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list | tuple) else []


class JARMSettings:
    """Typed attribute access to the ``JARM`` setting, falling back to :data:`DEFAULTS`."""

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = DEFAULTS if defaults is None else defaults
        # The derived values (below) and the JARM dict they come from, compared by identity:
        # override_settings (any new dict) recomputes them; reload() forgets them.
        self._derived_from: Any = _NOT_READ
        self._derived: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, SETTING_NAME, None)
        return value if isinstance(value, dict) else {}

    def get(self, name: str) -> Any:
        """The raw value of setting ``name`` (the user's, else the default)."""
        if name not in self.defaults:
            raise AttributeError(f"Invalid JARM setting: {name!r}")
        return self.user_settings.get(name, self.defaults[name])

    def reload(self) -> None:
        """Forget the derived values (needed only after changing the JARM dict in place)."""
        self._derived_from = _NOT_READ
        self._derived = {}

    def _derive(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per JARM dict: the request path reads these on every response."""
        source = getattr(settings, SETTING_NAME, None)
        if source is not self._derived_from:
            self._derived, self._derived_from = {}, source
        try:
            return self._derived[name]
        except KeyError:
            value = self._derived[name] = compute()
            return value

    # The settings, one typed property each -----------------------------------------------------

    @property
    def ISSUER(self) -> str | None:
        value = self.get("ISSUER")
        return str(value) if value else None

    @property
    def RESPONSE_LIFETIME(self) -> int:
        return int(self.get("RESPONSE_LIFETIME"))

    @property
    def INCLUDE_IAT(self) -> bool:
        return bool(self.get("INCLUDE_IAT"))

    @property
    def DEFAULT_SIGNING_ALG(self) -> str:
        return str(self.get("DEFAULT_SIGNING_ALG"))

    @property
    def SIGNING_ALGS_SUPPORTED(self) -> list[str]:
        return _as_list(self.get("SIGNING_ALGS_SUPPORTED"))

    @property
    def ENCRYPTION_ALGS_SUPPORTED(self) -> list[str]:
        return _as_list(self.get("ENCRYPTION_ALGS_SUPPORTED"))

    @property
    def ENCRYPTION_ENCS_SUPPORTED(self) -> list[str]:
        return _as_list(self.get("ENCRYPTION_ENCS_SUPPORTED"))

    @property
    def RESPONSE_MODES_SUPPORTED(self) -> list[str]:
        return _as_list(self.get("RESPONSE_MODES_SUPPORTED"))

    @property
    def REQUIRE_JARM(self) -> bool:
        return bool(self.get("REQUIRE_JARM"))

    @property
    def PROFILE(self) -> str | None:
        value = self.get("PROFILE")
        return str(value) if value else None

    @property
    def REDIRECT_STATUS(self) -> int:
        return int(self.get("REDIRECT_STATUS"))

    @property
    def RESPONSE_PLANNER(self) -> str:
        return str(self.get("RESPONSE_PLANNER"))

    @property
    def STATE_REFRESH_SECONDS(self) -> float:
        return float(self.get("STATE_REFRESH_SECONDS"))

    @property
    def JWKS_MAX_AGE(self) -> int | None:
        value = self.get("JWKS_MAX_AGE")
        return None if value is None else int(value)

    @property
    def CLIENT_JWKS_CACHE_SECONDS(self) -> int:
        return int(self.get("CLIENT_JWKS_CACHE_SECONDS"))

    @property
    def CLIENT_JWKS_TIMEOUT(self) -> float:
        return float(self.get("CLIENT_JWKS_TIMEOUT"))

    @property
    def CLIENT_JWKS_MAX_BYTES(self) -> int:
        return int(self.get("CLIENT_JWKS_MAX_BYTES"))

    @property
    def CLIENT_JWKS_ALLOW_HTTP(self) -> bool:
        return bool(self.get("CLIENT_JWKS_ALLOW_HTTP"))

    @property
    def CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES(self) -> bool:
        return bool(self.get("CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES"))

    @property
    def KEY_ENCRYPTION_SECRET(self) -> str | None:
        value = self.get("KEY_ENCRYPTION_SECRET")
        return str(value) if value else None

    @property
    def KEY_ENCRYPTION_SECRET_FALLBACKS(self) -> list[str]:
        return _as_list(self.get("KEY_ENCRYPTION_SECRET_FALLBACKS"))

    # Derived values (computed once per JARM dict) ------------------------------------------------

    @property
    def profile(self) -> Profile:
        """The FAPI profile enforced (``NO_PROFILE`` when ``PROFILE`` is None)."""
        profile: Profile = self._derive("profile", lambda: get_profile(self.PROFILE))
        return profile

    @property
    def signing_algs(self) -> list[str]:
        """Signing algorithms enabled by settings (and by the profile, when one is set)."""
        return list(self._derive("signing_algs", self._signing_algs))

    def _signing_algs(self) -> tuple[str, ...]:
        algs = [alg for alg in self.SIGNING_ALGS_SUPPORTED if alg in ALL_SIGNING_ALGS]
        profile_algs = self.profile.signing_algs
        if profile_algs is not None:
            algs = [alg for alg in algs if alg in profile_algs]
        return tuple(algs)

    @property
    def default_signing_alg(self) -> str:
        """``DEFAULT_SIGNING_ALG``; under a profile, when not set, the first algorithm it allows."""
        alg: str = self._derive("default_signing_alg", self._default_signing_alg)
        return alg

    def _default_signing_alg(self) -> str:
        profile_algs = self.profile.signing_algs
        if "DEFAULT_SIGNING_ALG" not in self.user_settings and profile_algs is not None:
            return (self.signing_algs or profile_algs)[0]
        return str(self.DEFAULT_SIGNING_ALG)

    @property
    def encryption_algs(self) -> list[str]:
        """Key management algorithms enabled by settings (never RSA1_5; no symmetric ones under FAPI 2)."""
        return list(self._derive("encryption_algs", self._encryption_algs))

    def _encryption_algs(self) -> tuple[str, ...]:
        allowed = self.profile.encryption_algs or ALL_ENCRYPTION_ALGS
        return tuple(alg for alg in self.ENCRYPTION_ALGS_SUPPORTED if alg in ALL_ENCRYPTION_ALGS and alg in allowed)

    @property
    def encryption_encs(self) -> list[str]:
        return list(
            self._derive(
                "encryption_encs",
                lambda: tuple(enc for enc in self.ENCRYPTION_ENCS_SUPPORTED if enc in ALL_ENCRYPTION_ENCS),
            )
        )

    @property
    def response_modes(self) -> list[str]:
        return list(
            self._derive(
                "response_modes",
                lambda: tuple(mode for mode in self.RESPONSE_MODES_SUPPORTED if mode in ALL_RESPONSE_MODES),
            )
        )

    @property
    def jwks_max_age(self) -> int:
        """Seconds clients may cache the JWK Set: ``JWKS_MAX_AGE``, else DOT's ``OIDC_JWKS_MAX_AGE_SECONDS``."""
        configured = self.JWKS_MAX_AGE
        if configured is not None:
            return configured
        return int(oauth2_settings.OIDC_JWKS_MAX_AGE_SECONDS)

    @property
    def response_lifetime(self) -> int:
        """``RESPONSE_LIFETIME``, never beyond the profile's bound (check E004 reports a larger value)."""
        lifetime: int = self._derive("response_lifetime", self._response_lifetime)
        return lifetime

    def _response_lifetime(self) -> int:
        bound = self.profile.max_response_lifetime
        lifetime = int(self.RESPONSE_LIFETIME)
        return lifetime if bound is None else min(lifetime, bound)

    @property
    def redirect_status(self) -> int:
        """``REDIRECT_STATUS``; when not set, the profile's (303 under FAPI 2.0)."""
        status: int = self._derive("redirect_status", self._redirect_status)
        return status

    def _redirect_status(self) -> int:
        if "REDIRECT_STATUS" not in self.user_settings:
            return self.profile.redirect_status
        return int(self.REDIRECT_STATUS)


#: "Not read yet" (``None`` is a possible value of the JARM setting).
_NOT_READ = object()

jarm_settings = JARMSettings()
