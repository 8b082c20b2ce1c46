"""Per-client JARM settings, cached per process and invalidated across processes.

The authorization view needs a client's :class:`~django_jarm.models.ClientSettings` on every
request. Rows are kept per process by application id and dropped when any client's settings
change anywhere (a generation counter in Django's cache, see :mod:`django_jarm.cache`).
"""

from __future__ import annotations

import threading
from typing import Any

from . import cache as shared_cache
from .models import ClientSettings

GENERATION_CACHE_KEY = shared_cache.GENERATION_KEYS[1]
_MAX = 10_000

_lock = threading.Lock()
_rows: dict[Any, ClientSettings | None] = {}
_generation: Any = None


def client_settings_for(application: Any) -> ClientSettings | None:
    """``application``'s settings row, or ``None`` when it has none (server defaults apply)."""
    global _generation
    generation = shared_cache.generations()[GENERATION_CACHE_KEY]
    with _lock:
        if generation != _generation:
            _rows.clear()
            _generation = generation
        if application.pk in _rows:
            return _rows[application.pk]
    row = ClientSettings.objects.filter(application_id=application.pk).first()
    with _lock:
        if len(_rows) >= _MAX:
            _rows.clear()
        _rows[application.pk] = row
    return row


def forget(*args: Any, **kwargs: Any) -> None:
    """Signal receiver: a client's settings changed, so every process reloads them."""
    with _lock:
        _rows.clear()
    shared_cache.bump(GENERATION_CACHE_KEY)
