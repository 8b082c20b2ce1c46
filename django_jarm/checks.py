"""System checks: configuration mistakes surface in ``manage.py check`` before a client sees them.

Ids are ``django_jarm.E0xx`` (errors) and ``django_jarm.W0xx`` (warnings); each has a hint
naming the setting to change. Checks that read the database are tagged ``database`` and run with
``manage.py check --database default``; a plain ``check`` or ``runserver`` reports the most
common of them, no key for the default algorithm, as the warning W007 once the default database
is migrated. The ``deploy`` ones run with ``--deploy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from ._compat import dot_has_par
from .authorization import ResponsePlanner
from .conf import (
    ALL_ENCRYPTION_ALGS,
    ALL_ENCRYPTION_ENCS,
    ALL_RESPONSE_MODES,
    ALL_SIGNING_ALGS,
    DEFAULTS,
    PROFILES,
    REMOVED_SETTINGS,
    SETTING_NAME,
    SYMMETRIC_ENCRYPTION_ALGS,
    SYMMETRIC_SIGNING_ALGS,
    jarm_settings,
)

#: Every check id with a one-line summary; docs/checks.md lists them all (a test makes sure).
CHECK_IDS = {
    "django_jarm.E001": "JARM is not a dict",
    "django_jarm.W001": "unknown JARM key",
    "django_jarm.E002": "JARM value has the wrong type or an unknown name in it",
    "django_jarm.E003": "'none' is configured as a signing algorithm",
    "django_jarm.E004": "RESPONSE_LIFETIME outside 10-600 seconds",
    "django_jarm.E005": "DEFAULT_SIGNING_ALG is not among the enabled signing algorithms",
    "django_jarm.E006": "REDIRECT_STATUS is neither 302 nor 303",
    "django_jarm.E007": "PROFILE is unknown",
    "django_jarm.E008": "PROFILE conflicts with the algorithm settings",
    "django_jarm.E009": "no active key for DEFAULT_SIGNING_ALG (database)",
    "django_jarm.W002": "an enabled signing algorithm has no active key (database)",
    "django_jarm.W007": "no active key for DEFAULT_SIGNING_ALG (E009's twin on every command)",
    "django_jarm.W003": "a client's HS* signing or secret-derived encryption cannot work (database)",
    "django_jarm.E010": "a stored server key cannot be decrypted (database)",
    "django_jarm.E011": "a client's JARM settings conflict with PROFILE (database)",
    "django_jarm.W004": "http jwks_uri allowed with DEBUG off (deploy)",
    "django_jarm.W005": "jwks_uri on private addresses allowed with DEBUG off (deploy)",
    "django_jarm.W006": "the issuer is derived from the request's Host header (deploy)",
    "django_jarm.W008": "a JARM key that no longer exists is set",
    "django_jarm.E013": "JARM['ISSUER'] differs from the issuer DOT puts in ID tokens and RFC 9207 iss",
    "django_jarm.E012": "PROFILE fapi2-message-signing with DOT's pushed authorization requests turned off",
}


def _names(allowed: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list | tuple) and all(item in allowed for item in value)


def _int_like(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _planner_class(value: Any) -> bool:
    try:
        planner = import_string(value) if isinstance(value, str) else None
    except ImportError:
        return False
    return isinstance(planner, type) and issubclass(planner, ResponsePlanner)


VALIDATORS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "ISSUER": (lambda v: v is None or (isinstance(v, str) and v.startswith(("https://", "http://"))), "a URL or None"),
    "RESPONSE_LIFETIME": (_int_like, "an integer number of seconds"),
    "DEFAULT_SIGNING_ALG": (lambda v: isinstance(v, str), "a JWS algorithm name"),
    "SIGNING_ALGS_SUPPORTED": (
        lambda v: isinstance(v, list | tuple) and all(isinstance(a, str) for a in v),
        "a list of JWS algorithm names",
    ),
    "ENCRYPTION_ALGS_SUPPORTED": (_names(ALL_ENCRYPTION_ALGS), f"a list among {', '.join(ALL_ENCRYPTION_ALGS)}"),
    "ENCRYPTION_ENCS_SUPPORTED": (_names(ALL_ENCRYPTION_ENCS), f"a list among {', '.join(ALL_ENCRYPTION_ENCS)}"),
    "RESPONSE_MODES_SUPPORTED": (_names(ALL_RESPONSE_MODES), f"a list among {', '.join(ALL_RESPONSE_MODES)}"),
    "REQUIRE_JARM": (lambda v: isinstance(v, bool), "True or False"),
    "PROFILE": (lambda v: v is None or isinstance(v, str), "None or a profile name"),
    "INCLUDE_IAT": (lambda v: isinstance(v, bool), "True or False"),
    "REDIRECT_STATUS": (_int_like, "302 or 303"),
    "STATE_REFRESH_SECONDS": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 60,
        "seconds, from 0 to 60",
    ),
    "JWKS_MAX_AGE": (lambda v: v is None or (_int_like(v) and v >= 0), "None or a number of seconds (0 or more)"),
    "RESPONSE_PLANNER": (_planner_class, "the import string of a django_jarm.authorization.ResponsePlanner subclass"),
    "CLIENT_JWKS_CACHE_SECONDS": (lambda v: _int_like(v) and v >= 0, "a number of seconds (0 or more)"),
    "CLIENT_JWKS_TIMEOUT": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 30,
        "seconds, more than 0 and at most 30",
    ),
    "CLIENT_JWKS_MAX_BYTES": (lambda v: _int_like(v) and v >= 1024, "a number of bytes (1024 or more)"),
    "CLIENT_JWKS_ALLOW_HTTP": (lambda v: isinstance(v, bool), "True or False"),
    "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": (lambda v: isinstance(v, bool), "True or False"),
    "KEY_ENCRYPTION_SECRET": (lambda v: v is None or (isinstance(v, str) and len(v) >= 32), "None or 32+ characters"),
    "KEY_ENCRYPTION_SECRET_FALLBACKS": (
        lambda v: isinstance(v, list | tuple) and all(isinstance(s, str) for s in v),
        "a list of strings",
    ),
}


def _hint(key: str, text: str) -> str:
    return f"Set {SETTING_NAME}['{key}'] to {text}."


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, SETTING_NAME, {})
    if not isinstance(value, dict):
        return [Error(f"{SETTING_NAME} must be a dict.", hint=f"Make {SETTING_NAME} a dict.", id="django_jarm.E001")]
    messages: list[CheckMessage] = []
    for key in value:
        if key in REMOVED_SETTINGS:
            messages.append(
                Warning(
                    f"{SETTING_NAME}['{key}'] is no longer used.",
                    hint=REMOVED_SETTINGS[key],
                    id="django_jarm.W008",
                )
            )
        elif key not in DEFAULTS:
            messages.append(
                Warning(
                    f"Unknown setting {SETTING_NAME}['{key}'].",
                    hint=f"Remove {SETTING_NAME}['{key}'] or correct its name; see docs/settings.md.",
                    id="django_jarm.W001",
                )
            )
    invalid = set()
    for key, (valid, expected) in VALIDATORS.items():
        if key in value and not valid(value[key]):
            invalid.add(key)
            messages.append(
                Error(f"{SETTING_NAME}['{key}'] is invalid.", hint=_hint(key, expected), id="django_jarm.E002")
            )
    if invalid:
        return messages
    messages += _check_algorithms()
    lifetime = jarm_settings.RESPONSE_LIFETIME
    if not 10 <= lifetime <= 600:
        messages.append(
            Error(
                f"{SETTING_NAME}['RESPONSE_LIFETIME'] is {lifetime} seconds.",
                hint=_hint("RESPONSE_LIFETIME", "a value from 10 to 600 (JARM 2.1 recommends at most 10 minutes)"),
                id="django_jarm.E004",
            )
        )
    messages += _check_issuer()
    if jarm_settings.REDIRECT_STATUS not in (302, 303):
        messages.append(
            Error(
                f"{SETTING_NAME}['REDIRECT_STATUS'] is {jarm_settings.REDIRECT_STATUS}.",
                hint=_hint("REDIRECT_STATUS", "302 or 303"),
                id="django_jarm.E006",
            )
        )
    messages += _check_pushed_requests()
    return messages


def _check_issuer() -> list[CheckMessage]:
    from oauth2_provider.settings import oauth2_settings

    pinned = jarm_settings.ISSUER
    dot_issuer = oauth2_settings.OIDC_ISS_ENDPOINT or ""
    if not pinned or pinned == dot_issuer:
        return []
    # DOT puts its own issuer in ID tokens and in RFC 9207 iss: an OIDC client rejects a
    # discovery document whose issuer differs from them.
    dot_says = repr(dot_issuer) if dot_issuer else "derived from each request's scheme and host"
    return [
        Error(
            f"{SETTING_NAME}['ISSUER'] is {pinned!r}, but DOT's issuer (OAUTH2_PROVIDER['OIDC_ISS_ENDPOINT']) "
            f"is {dot_says}.",
            hint=f"Set OAUTH2_PROVIDER['OIDC_ISS_ENDPOINT'] to {pinned!r} (then {SETTING_NAME}['ISSUER'] can go).",
            id="django_jarm.E013",
        )
    ]


def _check_pushed_requests() -> list[CheckMessage]:
    from oauth2_provider.settings import oauth2_settings

    # FAPI 2.0 Security Profile: authorization requests are pushed (RFC 9126). django_jarm
    # requires them wherever DOT serves PAR; with DOT's endpoint off nothing can be pushed.
    if jarm_settings.PROFILE == "fapi2-message-signing" and dot_has_par() and not oauth2_settings.PAR_ENABLED:
        return [
            Error(
                "PROFILE 'fapi2-message-signing' requires pushed authorization requests, "
                "but OAUTH2_PROVIDER['PAR_ENABLED'] is False.",
                hint=f"Set OAUTH2_PROVIDER['PAR_ENABLED'] to True, or change {SETTING_NAME}['PROFILE'].",
                id="django_jarm.E012",
            )
        ]
    return []


def _check_algorithms() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    configured = [*jarm_settings.SIGNING_ALGS_SUPPORTED, jarm_settings.DEFAULT_SIGNING_ALG]
    if any(str(alg).lower() == "none" for alg in configured):
        key = (
            "DEFAULT_SIGNING_ALG"
            if str(jarm_settings.DEFAULT_SIGNING_ALG).lower() == "none"
            else "SIGNING_ALGS_SUPPORTED"
        )
        messages.append(
            Error(
                "'none' is configured as a JARM signing algorithm; responses are always signed.",
                hint=f"Remove 'none' from {SETTING_NAME}['{key}'].",
                id="django_jarm.E003",
            )
        )
    unknown = [alg for alg in jarm_settings.SIGNING_ALGS_SUPPORTED if alg not in ALL_SIGNING_ALGS and alg != "none"]
    if unknown:
        messages.append(
            Error(
                f"Unknown signing algorithm(s) in {SETTING_NAME}['SIGNING_ALGS_SUPPORTED']: {', '.join(unknown)}.",
                hint=_hint("SIGNING_ALGS_SUPPORTED", f"a list among {', '.join(ALL_SIGNING_ALGS)}"),
                id="django_jarm.E002",
            )
        )
    profile = jarm_settings.PROFILE
    if profile not in PROFILES:
        messages.append(
            Error(
                f"Unknown {SETTING_NAME}['PROFILE'] {profile!r}.",
                hint=_hint("PROFILE", "None, 'fapi1-advanced' or 'fapi2-message-signing'"),
                id="django_jarm.E007",
            )
        )
        return messages
    conflicts = _profile_conflicts()
    messages += conflicts
    default = jarm_settings.default_signing_alg
    if default != "none" and default not in jarm_settings.signing_algs and not conflicts:
        messages.append(
            Error(
                f"{SETTING_NAME}['DEFAULT_SIGNING_ALG'] {default!r} is not an enabled signing algorithm.",
                hint=_hint(
                    "DEFAULT_SIGNING_ALG", f"one of {', '.join(jarm_settings.signing_algs) or '(none enabled)'}"
                ),
                id="django_jarm.E005",
            )
        )
    return messages


def _profile_conflicts() -> list[CheckMessage]:
    """Algorithms the settings name explicitly although the profile forbids them.

    Defaults never conflict: the profile narrows the default lists and picks the default
    signing algorithm, so ``{"PROFILE": "fapi1-advanced"}`` alone is a valid configuration.
    """
    profile = jarm_settings.profile
    if profile.name is None:
        return []
    given = jarm_settings.user_settings
    messages: list[CheckMessage] = []
    allowed = profile.signing_algs
    if allowed is not None:
        named = [*given.get("SIGNING_ALGS_SUPPORTED", []), given.get("DEFAULT_SIGNING_ALG")]
        outside = sorted({alg for alg in named if alg in ALL_SIGNING_ALGS and alg not in allowed})
        if outside:
            messages.append(
                Error(
                    f"PROFILE {profile.name!r} allows only {', '.join(allowed)} but {', '.join(outside)} "
                    "is configured.",
                    hint=f"Remove them from {SETTING_NAME}['SIGNING_ALGS_SUPPORTED'] and "
                    f"{SETTING_NAME}['DEFAULT_SIGNING_ALG'] (or leave both unset: the profile narrows them), "
                    f"or change {SETTING_NAME}['PROFILE'].",
                    id="django_jarm.E008",
                )
            )
    allowed_encryption = profile.encryption_algs
    if allowed_encryption is not None:
        outside = [alg for alg in given.get("ENCRYPTION_ALGS_SUPPORTED", []) if alg not in allowed_encryption]
        if outside:
            messages.append(
                Error(
                    f"PROFILE {profile.name!r} allows only {', '.join(allowed_encryption)} for encryption, but "
                    f"{', '.join(outside)} is configured.",
                    hint=f"Remove them from {SETTING_NAME}['ENCRYPTION_ALGS_SUPPORTED'] (or leave it unset).",
                    id="django_jarm.E008",
                )
            )
    return messages


@register(Tags.database)
def check_keys(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The server keys: E009, W002, E010. Runs with ``check --database default`` (and ``migrate``)."""
    if not databases:
        return []
    return _key_messages()


@register("django_jarm")
def check_default_key_without_database_option(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """W007, E009's twin, on every ``check``, ``runserver``, ``shell``… once the database is migrated.

    Django runs ``database``-tagged checks only when asked for a database, so "nothing can sign"
    would otherwise stay silent until the first client gets ``server_error``. A warning, not an
    error, so that it never blocks a command (``jarm_keys generate`` above all). With
    ``--database`` E009 reports the same as an error (Django 6 passes every alias to untagged
    checks, so this check cannot tell the two cases apart and runs in both). The default database
    is read only when it is reachable and migrated (SQLite: when its file exists); any failure to
    read it means "nothing to say". ``SILENCED_SYSTEM_CHECKS = ["django_jarm.W007"]`` also skips
    the database access.
    """
    if "django_jarm.W007" in settings.SILENCED_SYSTEM_CHECKS or not _default_database_is_migrated():
        return []
    try:
        active = _active_algs()
    except Exception:  # as above: a database that cannot be read has nothing to say here
        return []
    problem = _default_key_missing(active)
    if problem is None:
        return []
    message, hint = problem
    return [
        Warning(
            message,
            hint=f"{hint} (`check --database default` reports this as django_jarm.E009.)",
            id="django_jarm.W007",
        )
    ]


def _active_algs() -> set[str]:
    from oauth2_provider.settings import oauth2_settings

    from .models import ServerKey

    active = set(ServerKey.objects.filter(status=ServerKey.Status.ACTIVE).values_list("alg", flat=True))
    if oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        active.add("RS256")  # DOT's OIDC key signs RS256
    return active


def _default_key_missing(active: set[str]) -> tuple[str, str] | None:
    """(message, hint) when no key signs DEFAULT_SIGNING_ALG, else None."""
    default = jarm_settings.DEFAULT_SIGNING_ALG
    if default not in jarm_settings.signing_algs or default in SYMMETRIC_SIGNING_ALGS or default in active:
        return None
    have = ", ".join(sorted(active))
    switch = (
        f" (active keys exist for {have}: set {SETTING_NAME}['DEFAULT_SIGNING_ALG'] to one of them)" if have else ""
    )
    return (
        f"No active server key for {SETTING_NAME}['DEFAULT_SIGNING_ALG'] {default!r}: clients without "
        "their own algorithm get server_error.",
        f"Run `manage.py jarm_keys generate --alg {default}` or change {SETTING_NAME}['DEFAULT_SIGNING_ALG']{switch}.",
    )


def _default_database_is_migrated() -> bool:
    from django.db import DEFAULT_DB_ALIAS, connections

    from .models import ServerKey

    try:
        connection = connections[DEFAULT_DB_ALIAS]
        name = str(connection.settings_dict.get("NAME") or "")
        if connection.vendor == "sqlite" and not _sqlite_database_exists(name):
            return False  # connecting would create an empty file
        return ServerKey._meta.db_table in connection.introspection.table_names()
    except Exception:  # unreachable, misconfigured or blocked (tests): the check has nothing to say
        return False


def _sqlite_database_exists(name: str) -> bool:
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return True  # in memory, or a URI: nothing is created on disk by looking
    from pathlib import Path

    return Path(name).exists()


def _key_messages() -> list[CheckMessage]:
    from django.db import DatabaseError

    from .exceptions import KeyDecryptionError
    from .keys import SERVER_KEY_ALG, decrypt_private_key
    from .models import ServerKey

    try:
        rows = list(ServerKey.objects.published().values_list("kid", "alg", "status", "private_jwk_encrypted"))
    except DatabaseError:
        return []  # not migrated yet
    from oauth2_provider.settings import oauth2_settings

    active = {alg for _, alg, status, _ in rows if status == ServerKey.Status.ACTIVE}
    if oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        active.add("RS256")
    active |= {alg for alg, server_alg in SERVER_KEY_ALG.items() if server_alg in active}
    messages: list[CheckMessage] = []
    default = jarm_settings.default_signing_alg
    problem = _default_key_missing(active)
    if problem is not None:
        messages.append(Error(problem[0], hint=problem[1], id="django_jarm.E009"))
    # On the default list (every algorithm) discovery simply leaves out those without a key; only
    # algorithms enabled on purpose in SIGNING_ALGS_SUPPORTED deserve a warning.
    configured = getattr(settings, SETTING_NAME, {})
    chosen = isinstance(configured, dict) and "SIGNING_ALGS_SUPPORTED" in configured
    missing = [
        alg
        for alg in jarm_settings.signing_algs
        if alg not in SYMMETRIC_SIGNING_ALGS and alg not in active and alg != default
    ]
    if missing and chosen:
        messages.append(
            Warning(
                f"Enabled signing algorithm(s) without an active key: {', '.join(missing)}. They are left out of "
                "discovery, and clients configured for them get server_error.",
                hint=f"Generate keys (`manage.py jarm_keys generate --alg {missing[0]}`) or narrow "
                f"{SETTING_NAME}['SIGNING_ALGS_SUPPORTED'].",
                id="django_jarm.W002",
            )
        )
    for kid, _alg, _status, encrypted in rows:
        try:
            decrypt_private_key(encrypted, kid=kid)
        except KeyDecryptionError as exc:
            messages.append(
                Error(
                    str(exc),
                    hint=f"Restore {SETTING_NAME}['KEY_ENCRYPTION_SECRET'] (or SECRET_KEY), or list the old secret in "
                    f"{SETTING_NAME}['KEY_ENCRYPTION_SECRET_FALLBACKS'] and run `manage.py jarm_keys reencrypt`.",
                    id="django_jarm.E010",
                )
            )
    return messages


@register(Tags.database)
def check_clients(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not databases:
        return []
    from django.db import DatabaseError

    from .models import ClientSettings
    from .validation import hmac_secret_problem, symmetric_encryption_secret_problem

    messages: list[CheckMessage] = []
    try:
        rows = list(
            ClientSettings.objects.select_related("application").filter(
                authorization_signed_response_alg__in=SYMMETRIC_SIGNING_ALGS
            )
        ) + list(
            ClientSettings.objects.select_related("application").filter(
                authorization_encrypted_response_alg__in=SYMMETRIC_ENCRYPTION_ALGS
            )
        )
    except DatabaseError:
        return []
    for row in rows:
        application = row.application
        if row.authorization_signed_response_alg in SYMMETRIC_SIGNING_ALGS:
            problem = hmac_secret_problem(application, row.authorization_signed_response_alg)
        else:
            problem = symmetric_encryption_secret_problem(
                application, row.authorization_encrypted_response_alg, row.encryption_enc
            )
        if problem:
            messages.append(
                Warning(
                    f"Client {application.client_id}: {problem}",
                    hint="Change the client's JARM settings in the admin (Application page, JARM settings).",
                    obj=row,
                    id="django_jarm.W003",
                )
            )
    return messages


@register(Tags.database)
def check_client_profiles(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Clients whose JARM settings the profile refuses: every request of theirs would fail."""
    profile = jarm_settings.profile
    if not databases or profile.name is None:
        return []
    from django.db import DatabaseError

    from .models import ClientSettings
    from .profiles import CLIENT_FIELDS, client_settings_problems

    try:
        rows = list(ClientSettings.objects.select_related("application").order_by("pk"))
    except DatabaseError:
        return []
    messages: list[CheckMessage] = []
    for row in rows:
        values = {name: getattr(row, name) for name in CLIENT_FIELDS}
        for field, problem in client_settings_problems(profile, values).items():
            messages.append(
                Error(
                    f"Client {row.application.client_id}: {problem}",
                    hint=f"Change {field} in the client's JARM settings (admin: Application page, JARM settings), "
                    f"or change {SETTING_NAME}['PROFILE'].",
                    obj=row,
                    id="django_jarm.E011",
                )
            )
    return messages


@register(Tags.security, deploy=True)
def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.DEBUG or not isinstance(getattr(settings, SETTING_NAME, {}), dict):
        return []
    messages: list[CheckMessage] = []
    if jarm_settings.CLIENT_JWKS_ALLOW_HTTP:
        messages.append(
            Warning(
                "Client jwks_uri may use http: a network attacker can swap the client's encryption keys.",
                hint=f"Set {SETTING_NAME}['CLIENT_JWKS_ALLOW_HTTP'] to False in production.",
                id="django_jarm.W004",
            )
        )
    if jarm_settings.CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES:
        messages.append(
            Warning(
                "Client jwks_uri may point at loopback, private or link-local addresses (SSRF).",
                hint=f"Set {SETTING_NAME}['CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES'] to False in production.",
                id="django_jarm.W005",
            )
        )
    from oauth2_provider.settings import oauth2_settings

    if not jarm_settings.ISSUER and not oauth2_settings.OIDC_ISS_ENDPOINT:
        messages.append(
            Warning(
                "The issuer is derived from each request's scheme and Host header: behind a proxy it can differ "
                "from the URL clients know, and every JARM response then fails their iss check.",
                hint=f"Set {SETTING_NAME}['ISSUER'] (or OAUTH2_PROVIDER['OIDC_ISS_ENDPOINT']) to the public "
                "issuer URL.",
                id="django_jarm.W006",
            )
        )
    return messages
