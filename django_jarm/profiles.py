"""FAPI profiles: what ``JARM["PROFILE"]`` enforces, in one place.

A :class:`Profile` describes what a profile allows at the authorization endpoint. The request
path asks :func:`request_refusal`, the metadata views :func:`discovery_overrides`, client
validation and the system checks :func:`client_settings_problems`, so what discovery says is
exactly what the endpoint enforces. This module is a leaf: plain data and pure functions, no
settings read (``conf`` derives its algorithm lists from it).

Sources: FAPI 1.0 Advanced (Part 2) 5.2.2 and 8.6; FAPI 2.0 Security Profile 5.3.2, 5.4.1 and
Message Signing 5.4.1; RFC 9864 (``Ed25519``, the fully specified name of EdDSA with Ed25519).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

JWT_MODES = ("query.jwt", "fragment.jwt", "form_post.jwt", "jwt")


def normalise_response_type(response_type: str) -> str:
    """``response_type`` with its words sorted: the order of the words carries no meaning (RFC 6749 3.1.1)."""
    return " ".join(sorted((response_type or "").split()))


@dataclass(frozen=True)
class Profile:
    """What one value of ``JARM["PROFILE"]`` allows at the authorization endpoint."""

    name: str | None
    title: str
    #: Allowed response types (normalised); ``None``: whatever DOT allows.
    response_types: frozenset[str] | None = None
    #: Response types that must use a JWT response mode.
    jwt_response_types: frozenset[str] = frozenset()
    #: Every response goes through JARM (FAPI 2.0 Message Signing 5.4.1).
    require_jarm: bool = False
    #: A code request without PKCE is refused.
    require_pkce: bool = False
    #: PKCE methods accepted and advertised; ``None``: DOT's.
    code_challenge_methods: tuple[str, ...] | None = None
    #: JWS algorithms allowed; ``None``: every algorithm the settings enable.
    signing_algs: tuple[str, ...] | None = None
    #: JWE key management algorithms allowed; ``None``: every algorithm the settings enable.
    encryption_algs: tuple[str, ...] | None = None
    #: Upper bound of ``RESPONSE_LIFETIME`` in seconds; ``None``: the setting as given.
    max_response_lifetime: int | None = None
    #: ``REDIRECT_STATUS`` when the settings do not give one.
    redirect_status: int = 302

    def allows_response_type(self, response_type: str) -> bool:
        return self.response_types is None or normalise_response_type(response_type) in self.response_types

    def requires_jwt_mode(self, response_type: str) -> bool:
        """Whether a response to ``response_type`` must travel in a JWT response mode."""
        return self.require_jarm or normalise_response_type(response_type) in self.jwt_response_types


NO_PROFILE = Profile(name=None, title="no profile")

FAPI1_ADVANCED = Profile(
    name="fapi1-advanced",
    title="FAPI 1.0 Advanced",
    # FAPI 1.0 Advanced 5.2.2-2: code id_token, or code with response_mode=jwt.
    response_types=frozenset({"code", "code id_token"}),
    jwt_response_types=frozenset({"code"}),
    # FAPI 1.0 Advanced 5.2.2-18 requires PKCE only with PAR, and the conformance suite's
    # non-PAR FAPI 1 plans send none; S256 is the only method its text admits.
    require_pkce=False,
    code_challenge_methods=("S256",),
    # FAPI 1.0 Advanced 8.6: PS256 or ES256. 8.6.1: no RSA1_5 (never supported here).
    signing_algs=("PS256", "ES256"),
    encryption_algs=None,
    # FAPI 1.0 Advanced 5.2.2.2 / JARM 2.1: exp at most 10 minutes ahead.
    max_response_lifetime=600,
    redirect_status=302,
)

FAPI2_MESSAGE_SIGNING = Profile(
    name="fapi2-message-signing",
    title="FAPI 2.0 Message Signing",
    # FAPI 2.0 Security Profile 5.3.2.2: response_type=code only, PKCE with S256.
    response_types=frozenset({"code"}),
    jwt_response_types=frozenset({"code"}),
    # Message Signing 5.4.1: support, require and issue JARM responses.
    require_jarm=True,
    require_pkce=True,
    code_challenge_methods=("S256",),
    # Security Profile 5.4.1: PS256, ES256 or EdDSA with Ed25519 (RFC 9864 name: Ed25519).
    signing_algs=("PS256", "ES256", "EdDSA", "Ed25519"),
    # No symmetric keys (the algorithm list of 5.4.1 excludes MACs); never RSA1_5.
    encryption_algs=("RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"),
    max_response_lifetime=600,
    # Security Profile 5.3.2.2: 303 redirects are recommended.
    redirect_status=303,
)

PROFILES: dict[str | None, Profile] = {
    profile.name: profile for profile in (NO_PROFILE, FAPI1_ADVANCED, FAPI2_MESSAGE_SIGNING)
}


def get_profile(name: str | None) -> Profile:
    """The profile named ``name``; an unknown name is check ``django_jarm.E007`` and enforces nothing."""
    return PROFILES.get(name, NO_PROFILE)


class ProfileRefusal(NamedTuple):
    """An OAuth error (RFC 6749 4.1.2.1) and its description."""

    error: str
    description: str


def request_refusal(
    profile: Profile,
    *,
    response_type: str,
    response_mode_resolved: str,
    code_challenge: str | None,
    code_challenge_method: str | None,
) -> ProfileRefusal | None:
    """Why ``profile`` refuses this authorization request, or ``None`` when it allows it.

    ``response_mode_resolved`` is the mode the response would travel in (``jwt`` resolved).
    """
    if profile.name is None:
        return None
    if not profile.allows_response_type(response_type):
        allowed = " or ".join(f"response_type={value}" for value in sorted(profile.response_types or ()))
        return ProfileRefusal("unsupported_response_type", f"{profile.title} allows only {allowed}.")
    if profile.requires_jwt_mode(response_type) and response_mode_resolved not in JWT_MODES:
        return ProfileRefusal(
            "invalid_request", f"{profile.title} requires a JWT response mode (response_mode=jwt) here."
        )
    if "code" in (response_type or "").split():
        if not code_challenge:
            if profile.require_pkce:
                return ProfileRefusal("invalid_request", f"{profile.title} requires PKCE (code_challenge with S256).")
        elif profile.code_challenge_methods is not None:
            # RFC 7636 4.3: without code_challenge_method the method is plain.
            method = code_challenge_method or "plain"
            if method not in profile.code_challenge_methods:
                methods = ", ".join(profile.code_challenge_methods)
                return ProfileRefusal("invalid_request", f"{profile.title} requires code_challenge_method={methods}.")
    return None


def _kept(values: Any, allowed: Sequence[str] | frozenset[str] | None) -> Any:
    if allowed is None or not isinstance(values, list):
        return values
    return [value for value in values if value in allowed]


def discovery_overrides(profile: Profile, document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` (a discovery or RFC 8414 document) saying exactly what ``profile`` lets succeed."""
    data = dict(document)
    if profile.name is None:
        return data
    if isinstance(data.get("response_types_supported"), list):
        data["response_types_supported"] = [
            value for value in data["response_types_supported"] if profile.allows_response_type(value)
        ]
    if profile.code_challenge_methods is not None:
        data["code_challenge_methods_supported"] = list(profile.code_challenge_methods)
    if isinstance(data.get("response_modes_supported"), list):
        data["response_modes_supported"] = [
            mode for mode in data["response_modes_supported"] if _mode_can_succeed(profile, mode)
        ]
    data["authorization_signing_alg_values_supported"] = _kept(
        data.get("authorization_signing_alg_values_supported", []), profile.signing_algs
    )
    data["authorization_encryption_alg_values_supported"] = _kept(
        data.get("authorization_encryption_alg_values_supported", []), profile.encryption_algs
    )
    return data


def _mode_can_succeed(profile: Profile, mode: str) -> bool:
    """Whether some response type ``profile`` allows can be answered in ``mode``."""
    if mode in JWT_MODES:
        return True
    for response_type in profile.response_types or ():
        if profile.requires_jwt_mode(response_type):
            continue
        # OAuth 2.0 Multiple Response Types 2.1: tokens never travel in the query.
        if mode == "query" and response_type != "code":
            continue
        return True
    return profile.response_types is None


#: Client settings fields :func:`client_settings_problems` reads.
CLIENT_FIELDS = (
    "authorization_signed_response_alg",
    "authorization_encrypted_response_alg",
    "response_modes",
)


def client_settings_problems(profile: Profile, settings_values: Mapping[str, Any]) -> dict[str, str]:
    """Client settings that ``profile`` refuses: field name -> message naming the fix.

    ``settings_values`` holds the spec-named client metadata (:data:`CLIENT_FIELDS`); an empty
    or missing value means the server default, which the settings checks cover.
    """
    problems: dict[str, str] = {}
    if profile.name is None:
        return problems
    alg = settings_values.get("authorization_signed_response_alg") or ""
    if alg and profile.signing_algs is not None and alg not in profile.signing_algs:
        problems["authorization_signed_response_alg"] = (
            f"{profile.title} (JARM['PROFILE']) allows only {', '.join(profile.signing_algs)} for signing "
            f"responses, not {alg}: choose one of them."
        )
    encryption_alg = settings_values.get("authorization_encrypted_response_alg") or ""
    if encryption_alg and profile.encryption_algs is not None and encryption_alg not in profile.encryption_algs:
        problems["authorization_encrypted_response_alg"] = (
            f"{profile.title} (JARM['PROFILE']) allows only {', '.join(profile.encryption_algs)} for encrypting "
            f"responses, not {encryption_alg}: choose one of them or clear the encryption algorithm."
        )
    modes = settings_values.get("response_modes") or []
    if isinstance(modes, list):
        useless = [mode for mode in modes if isinstance(mode, str) and not _mode_can_succeed(profile, mode)]
        if useless:
            problems["response_modes"] = (
                f"{profile.title} (JARM['PROFILE']) refuses every response in {', '.join(useless)}: remove "
                f"{'it' if len(useless) == 1 else 'them'} from the allowed response modes."
            )
    return problems
