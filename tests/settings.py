"""Settings of the test project: DOT with OIDC on, django_jarm installed, SQLite in memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from example_project.service_urls import cache_from_url, database_from_url


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _oidc_key() -> str:
    """DOT's OIDC key: shared through a file by every server process of a multi-process test."""
    path = os.environ.get("JARM_TEST_OIDC_KEY_FILE")
    return Path(path).read_text() if path else _rsa_pem()


SECRET_KEY = "django_jarm tests: not a secret"
# Extra JARM settings for server processes started by the tests (a JSON object).
JARM = json.loads(os.environ.get("JARM_TEST_SETTINGS", "{}"))
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "oauth2_provider",
    "django_jarm",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

# SQLite in memory and a per-process cache by default; PostgreSQL and Redis when these are set,
# e.g. JARM_TEST_DATABASE_URL=postgres://jarm:jarm@127.0.0.1:5432/jarm JARM_TEST_REDIS_URL=redis://127.0.0.1:6379/0
DATABASES = {"default": database_from_url(os.environ.get("JARM_TEST_DATABASE_URL", "sqlite://:memory:"))}
CACHES = {"default": cache_from_url(os.environ.get("JARM_TEST_REDIS_URL", "locmem://"))}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "/login/"

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _oidc_key(),
    "OAUTH2_VALIDATOR_CLASS": "tests.validators.SilentLoginValidator",
    "SCOPES": {"openid": "OpenID Connect", "read": "Read", "write": "Write"},
    "DEFAULT_SCOPES": ["read"],
    "PKCE_REQUIRED": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http", "com.example.app"],
    "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
    # One issuer everywhere (django_jarm.E011): server processes started by the tests pin it.
    "OIDC_ISS_ENDPOINT": JARM.get("ISSUER", ""),
}
