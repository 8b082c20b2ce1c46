"""``DATABASES``/``CACHES`` entries from ``DATABASE_URL``/``REDIS_URL``-style URLs (example and test settings)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def database_from_url(url: str) -> dict[str, Any]:
    """``sqlite:///path``, ``sqlite://:memory:`` or ``postgres://user:password@host:port/name[?conn_max_age=S]``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        name = ":memory:" if parts.netloc == ":memory:" else unquote(parts.path)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": int(parse_qs(parts.query).get("conn_max_age", ["0"])[0]),
        }
    raise ValueError(f"Unsupported database URL scheme {parts.scheme!r}")


def cache_from_url(url: str) -> dict[str, Any]:
    """``locmem://``, ``dummy://`` or ``redis://host:port/db``."""
    if url.startswith("redis://"):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "jarm"}
    if url.startswith("locmem://"):
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if url.startswith("dummy://"):
        return {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    raise ValueError(f"Unsupported cache URL {url!r}")
