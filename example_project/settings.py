"""Settings of the django_jarm demo authorization server (a demo: DEBUG on, SQLite, runserver).

Environment variables (all optional):

* ``DATABASE_URL``: ``postgres://user:password@host:port/name`` (``?conn_max_age=60`` for persistent
  connections) or ``sqlite:///path``. Default: SQLite at ``DJANGO_JARM_DEMO_DB`` (default
  ``example_project/db.sqlite3``).
* ``REDIS_URL``: ``redis://host:port/db`` for Django's cache (shared by every process: key changes
  reach them all at once). Default: a per-process memory cache.
* ``DJANGO_JARM_DEMO_KEY_FILE``: path of DOT's OIDC RSA private key (default
  ``example_project/oidc.key``). The key is generated on first use and never committed.
* ``DJANGO_JARM_DEMO_RP_KEY_FILE``: path of the demo relying party's RSA private key, which
  encrypted responses are encrypted to (default: ``relying_party.key`` beside the OIDC key).
  Generated on first use and never committed either; ``manage.py jarm_demo`` publishes its
  public part in the JWK Set of the encrypting demo client.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from example_project.service_urls import cache_from_url, database_from_url

BASE_DIR = Path(__file__).resolve().parent


def _rsa_private_key(path: Path) -> str:
    """The PEM in ``path``; a new 2048-bit RSA key (PKCS8, mode 0600) is written there first if missing."""
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a private temporary file, then linked into place: the key file never exists
    # half-written or with wider permissions, and a process racing us keeps the first key.
    temporary = path.with_name(f".{os.getpid()}.{path.name}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink()
    return path.read_text()


# A demo: never run this configuration on a public address. The SECRET_KEY also derives the key
# that encrypts the JARM server keys stored in the database, so changing it makes them unreadable.
SECRET_KEY = "django-insecure-django_jarm-demo-only-never-use-in-production"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    # First, so that their templates (login and consent pages) win over the other apps'.
    "example_project.demo",
    "example_project.relying_party",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "django_jarm",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL")
        or f"sqlite:///{os.environ.get('DJANGO_JARM_DEMO_DB') or BASE_DIR / 'db.sqlite3'}"
    )
}
CACHES = {"default": cache_from_url(os.environ.get("REDIS_URL") or "locmem://")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# The admin's times in UTC, like the relying party's result pages and the JWT claims.
TIME_ZONE = "UTC"
STATIC_URL = "static/"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

OIDC_KEY_FILE = Path(os.environ.get("DJANGO_JARM_DEMO_KEY_FILE") or BASE_DIR / "oidc.key")

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    # Read from a file outside version control, created on first import (see _rsa_private_key).
    # DOT signs ID tokens with it; django_jarm signs RS256 responses with it too.
    "OIDC_RSA_PRIVATE_KEY": _rsa_private_key(OIDC_KEY_FILE),
    # DOT leaves prompt=none unimplemented; this validator answers it.
    "OAUTH2_VALIDATOR_CLASS": "example_project.demo.validators.DemoOAuth2Validator",
    "SCOPES": {"openid": "OpenID Connect", "read": "Read your data", "write": "Change your data"},
    "DEFAULT_SCOPES": ["read"],
    "PKCE_REQUIRED": True,
    # Dynamic client registration (RFC 7591/7592) at /o/register/, with the JARM client metadata.
    "DCR_ENABLED": True,
    # DEMO ONLY: open registration, anyone may register a client. DOT's default,
    # IsAuthenticatedDCRPermission, lets only logged-in users register; a real server chooses
    # its policy (an initial access token, an allow-list) and never copies this line.
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
}

JARM = {
    "RESPONSE_LIFETIME": 120,
    # FAPI 2.0 advises 303 for the redirect that follows the consent POST.
    "REDIRECT_STATUS": 303,
    # The other settings, with their defaults:
    # "ISSUER": None,  # None: DOT's issuer (here http://127.0.0.1:8000/o)
    # "DEFAULT_SIGNING_ALG": "RS256",  # for clients without authorization_signed_response_alg
    # "SIGNING_ALGS_SUPPORTED": [...],  # RS*, PS*, ES*, EdDSA, Ed25519; list HS256/384/512 to enable them
    # "ENCRYPTION_ALGS_SUPPORTED": [...],
    # "ENCRYPTION_ENCS_SUPPORTED": [...],
    # "RESPONSE_MODES_SUPPORTED": [...],  # query, fragment, form_post and the .jwt twins, jwt
    # "REQUIRE_JARM": False,  # refuse plain response modes for every client
    # "PROFILE": None,  # or "fapi1-advanced", "fapi2-message-signing" (README: FAPI profiles)
    # "INCLUDE_IAT": True,
    # "STATE_REFRESH_SECONDS": 1.0,  # a committed change applies in every process within this bound
    # "JWKS_MAX_AGE": None,  # JWK Set max-age (None: OIDC_JWKS_MAX_AGE_SECONDS); rotation waits for it
    # "CLIENT_JWKS_CACHE_SECONDS": 300,
    # "CLIENT_JWKS_TIMEOUT": 3.0,
    # "CLIENT_JWKS_MAX_BYTES": 65536,
    # "CLIENT_JWKS_ALLOW_HTTP": False,
    # "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": False,
    # "KEY_ENCRYPTION_SECRET": None,  # None: derived from SECRET_KEY
}

# The demo relying party (example_project.relying_party): an OAuth client of the server above,
# in the same process for convenience. It talks to the server over HTTP only, like any client.
RELYING_PARTY = {
    # Where the authorization server lives, relative to the origin the demo is opened on. The
    # relying party reads everything else from the discovery document under it.
    "ISSUER_PATH": "/o",
    # Its private decryption key (RSA-OAEP-256), in a file outside version control.
    "ENCRYPTION_KEY_PEM": _rsa_private_key(
        Path(os.environ.get("DJANGO_JARM_DEMO_RP_KEY_FILE") or OIDC_KEY_FILE.with_name("relying_party.key"))
    ),
    # Timeout of its HTTP requests to the authorization server (discovery, JWK Set, token).
    "HTTP_TIMEOUT": 10,
}

# Codes, tokens and state never reach the console or an e-mail: oauthlib and Django's template
# engine log them at DEBUG, runserver logs every request line (callback URLs carry the response,
# login redirects the percent-encoded authorization request), and the admins' error e-mail reports
# the request. Every handler Django configures is redefined here with the filter: a handler left
# to Django's defaults (its "django.server" and "mail_admins") would stay unfiltered.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "django_jarm.log_filters.RedactSecretsFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact"],
            "level": "INFO",
        },
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "filters": ["require_debug_false", "redact"],
            "level": "ERROR",
        },
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django": {"handlers": ["console", "mail_admins"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "oauthlib": {"level": "INFO"},
        "django.template": {"level": "INFO"},
    },
}
