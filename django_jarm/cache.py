"""Django's cache, used as an optimisation only: when the cache backend fails (Redis down),
reads miss and writes are dropped, and the caller falls back to the database or the network.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import cache

logger = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 60.0
_last_warning = 0.0


def _failed(operation: str, exc: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY_SECONDS:
        _last_warning = now
        logger.warning("Cache unavailable (%s failed: %s); carrying on without it.", operation, type(exc).__name__)


def get(key: str, default: Any = None) -> Any:
    try:
        return cache.get(key, default)
    except Exception as exc:  # any backend error: connection refused, timeout, protocol
        _failed("get", exc)
        return default


def set(key: str, value: Any, timeout: float | None) -> None:
    try:
        cache.set(key, value, timeout)
    except Exception as exc:
        _failed("set", exc)


def add(key: str, value: Any, timeout: float | None) -> bool:
    """Like ``cache.add``; ``True`` when the cache is down (the caller's action is then allowed)."""
    try:
        return bool(cache.add(key, value, timeout))
    except Exception as exc:
        _failed("add", exc)
        return True


def delete(key: str) -> None:
    try:
        cache.delete(key)
    except Exception as exc:
        _failed("delete", exc)


def incr(key: str) -> None:
    """Increment ``key``, creating it at 1 (forever) when missing."""
    try:
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, None)
    except Exception as exc:
        _failed("incr", exc)


# Generation counters ----------------------------------------------------------------------
#
# Each process caches things read from the database (server keys, client settings) and
# re-reads them when a counter in the shared cache has moved. Reading the counters costs a
# cache round trip, so one read serves the process for GENERATION_POLL_SECONDS: a change
# made in another process is seen within that time (at once in the process that made it).

GENERATION_POLL_SECONDS = 1.0
GENERATION_KEYS = ("django_jarm:server-keys:generation", "django_jarm:client-settings:generation")
_generations: tuple[float, dict[str, Any]] | None = None


def generations() -> dict[str, Any]:
    """The current value of every generation counter (missing counters are 0)."""
    global _generations
    now = time.monotonic()
    memo = _generations
    if memo is not None and now - memo[0] < GENERATION_POLL_SECONDS:
        return memo[1]
    try:
        values = cache.get_many(GENERATION_KEYS)
    except Exception as exc:
        _failed("get_many", exc)
        values = {}
    current = {key: values.get(key, 0) for key in GENERATION_KEYS}
    _generations = (now, current)
    return current


def bump(key: str) -> None:
    """Move counter ``key`` on: every process re-reads what it guards."""
    global _generations
    incr(key)
    _generations = None


def forget_generations() -> None:
    """Read the counters again on next use (tests; a process that changed something)."""
    global _generations
    _generations = None
