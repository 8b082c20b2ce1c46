"""The per-process snapshot of configuration, and its one consistency rule (DESIGN 6).

Everything a process keeps between requests that can become stale (the published server keys,
parsed signing keys and the key each algorithm signs with, client settings and the key chosen
from a client's stored JWK Set, fetched client JWK Sets, metadata documents, the issuer) is kept
in the current :class:`Snapshot`, and nowhere else; only memos of pure functions (keyed by the
content they are computed from) live in bounded ``lru_cache``s. The rule for becoming stale is one:

    A snapshot is used while its version equals the version row in the database
    (:class:`~django_jarm.models.StateVersion`), compared at most every
    ``JARM["STATE_REFRESH_SECONDS"]``; when the row has moved, the snapshot is dropped whole.

Every change of keys or client settings moves the row in the same transaction as the change, so a
committed change applies in every process within ``STATE_REFRESH_SECONDS`` (plus one request),
whatever Django's cache is or does: the cache is not involved at all. The process that made a
change re-checks at once. Settings changes (``override_settings``) drop the snapshot too.

Entries that come from remote peers (a client's ``jwks_uri``) also carry their own expiry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .conf import jarm_settings
from .models import ClientSettings, ServerKey, StateVersion

T = TypeVar("T")

#: Most entries one kind of memo holds (clients, hosts, URLs): a bound on memory, never reached
#: by a real deployment's configuration; the oldest entries go first.
MAX_ENTRIES = 10_000


class Snapshot:
    """What this process knows at one version of the configuration."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.checked_at = time.monotonic()
        self._memos: dict[str, OrderedDict[Hashable, tuple[float, Any]]] = {}
        self._empty: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def memo(self, kind: str, key: Hashable, build: Callable[[], T], *, ttl: float | None = None) -> T:
        """The value of ``kind``/``key`` in this snapshot, built (once) by ``build`` when missing.

        ``ttl`` (seconds) bounds how long a value from a remote peer is used.
        """
        now = time.monotonic()
        with self._lock:
            found = self._memos.get(kind, self._empty).get(key)
        if found is not None and found[0] >= now:
            kept: T = found[1]
            return kept
        value = build()
        self.remember(kind, key, value, ttl=ttl)
        return value

    def recall(self, kind: str, key: Hashable) -> Any:
        """The unexpired value of ``kind``/``key``, or ``None``."""
        with self._lock:
            found = self._memos.get(kind, self._empty).get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def remember(self, kind: str, key: Hashable, value: Any, *, ttl: float | None = None) -> None:
        expires = float("inf") if ttl is None else time.monotonic() + ttl
        with self._lock:
            entries = self._memos.setdefault(kind, OrderedDict())
            entries[key] = (expires, value)
            entries.move_to_end(key)
            while len(entries) > MAX_ENTRIES:
                entries.popitem(last=False)

    def forget(self, kind: str, key: Hashable) -> None:
        with self._lock:
            self._memos.get(kind, self._empty).pop(key, None)


_lock = threading.Lock()
_snapshot: Snapshot | None = None


def current() -> Snapshot:
    """The snapshot for this request: the kept one, unless the version row has moved."""
    global _snapshot
    snapshot = _snapshot
    now = time.monotonic()
    if snapshot is not None and now - snapshot.checked_at < jarm_settings.STATE_REFRESH_SECONDS:
        return snapshot
    with _lock:
        snapshot = _snapshot
        if snapshot is not None and time.monotonic() - snapshot.checked_at < jarm_settings.STATE_REFRESH_SECONDS:
            return snapshot
        # The version is read before anything the snapshot loads: data newer than its version
        # only makes the next comparison reload, never hides a change.
        version = StateVersion.current()
        if snapshot is not None and snapshot.version == version:
            snapshot.checked_at = time.monotonic()
            return snapshot
        _snapshot = Snapshot(version)
        return _snapshot


def recheck() -> None:
    """Compare with the version row on next use (this process has just changed something)."""
    snapshot = _snapshot
    if snapshot is not None:
        snapshot.checked_at = float("-inf")


def clear() -> None:
    """Drop the snapshot: the next request loads everything again (tests, settings changes)."""
    global _snapshot
    _snapshot = None


def client_settings(application: Any) -> ClientSettings | None:
    """``application``'s JARM settings in the current snapshot (``None``: server defaults apply)."""
    return current().memo(
        "client-settings",
        application.pk,
        lambda: ClientSettings.objects.filter(application_id=application.pk).first(),
    )


@receiver(post_save, sender=ClientSettings, dispatch_uid="django_jarm.state.client_settings_saved")
@receiver(post_delete, sender=ClientSettings, dispatch_uid="django_jarm.state.client_settings_deleted")
@receiver(post_save, sender=ServerKey, dispatch_uid="django_jarm.state.server_key_saved")
@receiver(post_delete, sender=ServerKey, dispatch_uid="django_jarm.state.server_key_deleted")
def _changed_here(*args: Any, using: str, **kwargs: Any) -> None:
    # At once, for the code that made the change, and again once it commits (the first check may
    # have run inside the transaction; a rolled-back change is undone by the next comparison).
    recheck()
    transaction.on_commit(recheck, using=using)


@receiver(setting_changed, dispatch_uid="django_jarm.state.setting_changed")
def _setting_changed(**kwargs: Any) -> None:
    jarm_settings.reload()
    clear()
