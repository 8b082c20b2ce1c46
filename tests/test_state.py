"""The per-process snapshot and its one rule: reused while the version row has not moved."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_jarm import state
from django_jarm.keys import generate_server_key, published_jwks
from django_jarm.models import ClientSettings, StateVersion

BROKEN = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
DUMMY = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

pytestmark = pytest.mark.django_db


class Clock:
    """state's monotonic clock, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(state.time, "monotonic", lambda: self.now)


def other_process_changes_something() -> None:
    """What another process's committed change looks like from here: only the row moved."""
    StateVersion.bump()


def test_the_snapshot_is_reused_within_the_refresh_interval(monkeypatch):
    clock = Clock(monkeypatch)
    first = state.current()
    clock.now += 0.5
    with CaptureQueriesContext(connection) as queries:
        assert state.current() is first
    assert len(queries) == 0


def test_after_the_interval_one_query_compares_the_version(monkeypatch):
    clock = Clock(monkeypatch)
    first = state.current()
    clock.now += 1.0
    with CaptureQueriesContext(connection) as queries:
        assert state.current() is first
    assert len(queries) == 1


def test_a_change_elsewhere_is_seen_within_the_interval(monkeypatch):
    clock = Clock(monkeypatch)
    first = state.current()
    first.remember("kind", "key", "value")
    other_process_changes_something()
    clock.now += 0.9
    assert state.current() is first  # not yet: within the bound
    clock.now += 0.1
    second = state.current()
    assert second is not first
    assert second.recall("kind", "key") is None  # dropped whole


@override_settings(JARM={"STATE_REFRESH_SECONDS": 5})
def test_the_bound_is_a_setting(monkeypatch):
    clock = Clock(monkeypatch)
    first = state.current()
    other_process_changes_something()
    clock.now += 4.9
    assert state.current() is first
    clock.now += 0.1
    assert state.current() is not first


def test_a_change_made_here_is_seen_at_once(monkeypatch, make_app):
    Clock(monkeypatch)
    app = make_app("code")
    assert state.client_settings(app) is None
    ClientSettings.objects.create(application=app, require_jarm=True)
    assert state.client_settings(app).require_jarm is True


def versions_after(*changes: Any) -> list[int]:
    versions = [StateVersion.current()]
    for change in changes:
        change()
        versions.append(StateVersion.current())
    return versions


def test_every_change_of_client_settings_moves_the_version(make_app):
    app = make_app("code")
    row = ClientSettings(application=app)

    def change() -> None:
        row.require_jarm = True
        row.save()

    versions = versions_after(row.save, change, row.delete)
    assert len(set(versions)) == 4


def test_deleting_the_application_moves_the_version(make_app):
    app = make_app("code", jarm={"require_jarm": True})
    before = StateVersion.current()
    app.delete()
    assert StateVersion.current() != before


def test_every_change_of_server_keys_moves_the_version():
    before = StateVersion.current()
    key = generate_server_key("ES256")
    middle = StateVersion.current()
    key.save()
    assert len({before, middle, StateVersion.current()}) == 3


def test_the_version_is_written_in_the_transaction_of_the_change(make_app):
    """A change rolled back leaves the version where it was: nothing to reload for."""
    from django.db import transaction

    app = make_app("code")
    before = StateVersion.current()
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012
        ClientSettings.objects.create(application=app, require_jarm=True)
        assert StateVersion.current() != before
        raise RuntimeError
    assert StateVersion.current() == before
    assert not ClientSettings.objects.filter(application=app).exists()


def test_remote_values_expire_on_their_own(monkeypatch):
    clock = Clock(monkeypatch)
    snapshot = state.current()
    snapshot.remember("client-jwks", "https://rp.example/jwks", {"keys": []}, ttl=30)
    clock.now += 29
    assert snapshot.recall("client-jwks", "https://rp.example/jwks") == {"keys": []}
    clock.now += 2
    assert snapshot.recall("client-jwks", "https://rp.example/jwks") is None


def test_memo_builds_once():
    calls = []
    snapshot = state.current()
    for _ in range(3):
        assert snapshot.memo("kind", 1, lambda: calls.append(1) or "built") == "built"
    assert calls == [1]


def test_each_kind_is_bounded(monkeypatch):
    monkeypatch.setattr(state, "MAX_ENTRIES", 3)
    snapshot = state.current()
    for index in range(5):
        snapshot.remember("kind", index, index)
    assert [snapshot.recall("kind", index) for index in range(5)] == [None, None, 2, 3, 4]


def test_a_settings_change_drops_the_snapshot():
    first = state.current()
    with override_settings(JARM={"RESPONSE_LIFETIME": 60}):
        assert state.current() is not first


@pytest.mark.parametrize("caches", [BROKEN, DUMMY], ids=["cache-down", "dummy-cache"])
def test_signing_and_jwks_need_no_cache(caches, browser, make_app, authorize, verify, jwks):
    with override_settings(CACHES=caches):
        key = generate_server_key("ES256")
        app = make_app("code", jarm={"authorization_signed_response_alg": "ES256"})
        response, _, _ = authorize(browser, app, "code", "jwt")
        assert verify(response, app)[1].header["kid"] == key.kid
        assert key.kid in {k["kid"] for k in jwks()["keys"]}


@pytest.mark.parametrize("caches", [BROKEN, DUMMY], ids=["cache-down", "dummy-cache"])
def test_key_changes_apply_without_a_cache(caches, monkeypatch):
    clock = Clock(monkeypatch)
    with override_settings(CACHES=caches):
        key = generate_server_key("ES256")
        assert key.kid in {k["kid"] for k in published_jwks()["keys"]}
        state.current()
        # Another process stores a key: this one publishes it once the interval has passed.
        from django_jarm.models import ServerKey

        ServerKey.objects.filter(kid=key.kid).update(status=ServerKey.Status.RETIRED)
        other_process_changes_something()
        clock.now += 1.0
        assert key.kid not in {k["kid"] for k in published_jwks()["keys"]}


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_never_hides_the_next_one(make_app):
    """A snapshot built inside a transaction that rolls back is replaced by the next committed change."""
    from django.db import transaction

    app = make_app("code", jarm={"require_jarm": False})
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012
        row = ClientSettings.objects.get(application=app)
        row.require_jarm = True
        row.save()
        assert state.client_settings(app).require_jarm is True  # seen inside the transaction
        raise RuntimeError
    other = make_app("code")
    ClientSettings.objects.create(application=other)  # an unrelated committed change
    assert state.client_settings(app).require_jarm is False
