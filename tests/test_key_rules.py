"""Server key rules at their edges: each wait ends exactly when it says, each refusal and each
rotation says what it did, and the published keys sign under the right names.

The lifecycle functions read the clock through ``django_jarm.keys.timezone``; these tests set
that clock to exact moments.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.db import IntegrityError
from django.test import Client
from django.utils import timezone

from django_jarm import keys, state
from django_jarm.exceptions import ConfigurationError, KeyDecryptionError, LifecycleConflict
from django_jarm.keys import (
    PublishedKey,
    PublishedKeys,
    Rotation,
    activate_server_key,
    algs_due_for_rotation,
    describe_rotation,
    generate_server_key,
    get_signing_key,
    import_server_key,
    reencrypt_server_keys,
    retire_server_key,
    rotate_server_keys,
)
from django_jarm.models import ServerKey
from django_jarm.signals import server_key_rotated

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
TICK = datetime.timedelta(microseconds=1)


class Clock:
    def __init__(self, moment: datetime.datetime) -> None:
        self.moment = moment

    def now(self) -> datetime.datetime:
        return self.moment


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock(T0)
    monkeypatch.setattr(keys, "timezone", frozen)
    return frozen


def stored(alg: str, status: str, *, created: datetime.datetime, **fields: Any) -> ServerKey:
    """A key of ``alg`` with the given status and times, as the database would hold it."""
    key = generate_server_key(alg, status=status)
    ServerKey.objects.filter(pk=key.pk).update(created=created, **fields)
    key.refresh_from_db()
    return key


def status_of(key: ServerKey) -> str:
    return ServerKey.objects.get(pk=key.pk).status


# Each wait ends exactly at its time ---------------------------------------------------------------


def test_activation_is_refused_until_the_exact_moment_then_allowed(clock):
    stored("ES256", "active", created=T0 - datetime.timedelta(days=30))
    upcoming = stored("ES256", "next", created=T0)
    ready = keys.activation_time(upcoming)
    clock.moment = ready - TICK
    with pytest.raises(LifecycleConflict) as refused:
        activate_server_key(upcoming.kid)
    assert str(refused.value) == (
        f"Key {upcoming.kid} has been published for 3601 s; clients may cache the JWK Set for 3600 s, so it "
        f"can sign from {ready:%Y-%m-%d %H:%M:%S} UTC (in 0 s). Activate it then, or force it now (clients "
        "holding an older JWK Set fail until they fetch it again)."
    )
    clock.moment = ready
    activate_server_key(upcoming.kid)
    assert status_of(upcoming) == "active"


def test_retirement_is_refused_until_the_exact_moment_then_allowed(clock):
    stored("ES256", "active", created=T0 - datetime.timedelta(days=30))
    outgoing = stored("ES256", "retiring", created=T0 - datetime.timedelta(days=60), retiring_since=T0)
    ready = keys.retirement_time(outgoing)
    assert ready == T0 + datetime.timedelta(seconds=1 + 120 + 3600)
    clock.moment = ready - TICK
    with pytest.raises(LifecycleConflict) as refused:
        retire_server_key(outgoing.kid)
    assert str(refused.value) == (
        f"Key {outgoing.kid} stopped signing 3721 s ago (responses live 120 s, clients cache the JWK Set 3600 s): "
        f"retire it from {ready:%Y-%m-%d %H:%M:%S} UTC (in 0 s), or force it now (responses it signed then fail "
        "to verify)."
    )
    clock.moment = ready
    retire_server_key(outgoing.kid)
    assert status_of(outgoing) == "retired"


def test_rotation_retires_and_activates_exactly_when_the_waits_end(clock):
    active = stored("ES256", "active", created=T0 - datetime.timedelta(days=30))
    outgoing = stored("ES256", "retiring", created=T0 - datetime.timedelta(days=60), retiring_since=T0)
    upcoming = stored("ES256", "next", created=T0)
    retire_at, activate_at = keys.retirement_time(outgoing), keys.activation_time(upcoming)
    assert retire_at is not None
    assert retire_at > activate_at

    clock.moment = activate_at - TICK
    waiting = rotate_server_keys("ES256")
    assert (waiting.activated, waiting.next, waiting.ready_at) == (None, upcoming.kid, activate_at)
    assert waiting.kept == ((outgoing.kid, retire_at),)

    clock.moment = activate_at
    moved = rotate_server_keys("ES256")
    assert (moved.activated, moved.retiring) == (upcoming.kid, active.kid)
    assert moved.kept == ((outgoing.kid, retire_at),)
    assert status_of(outgoing) == "retiring"

    clock.moment = retire_at - TICK
    assert rotate_server_keys("ES256").retired == ()
    clock.moment = retire_at
    assert rotate_server_keys("ES256").retired == (outgoing.kid,)


# What a rotation does, and says ----------------------------------------------------------------------


def test_rotation_handles_every_retiring_key_whatever_comes_before_it(clock):
    # Oldest first: an active key, a retiring key still kept, then one whose keep window is over.
    stored("ES256", "active", created=T0 - datetime.timedelta(days=90))
    kept = stored("ES256", "retiring", created=T0 - datetime.timedelta(days=80), retiring_since=T0)
    due = stored(
        "ES256", "retiring", created=T0 - datetime.timedelta(days=70), retiring_since=T0 - datetime.timedelta(days=1)
    )
    stored("ES256", "next", created=T0)  # not ready: the rotation reports without activating
    rotation = rotate_server_keys("ES256")
    assert rotation.activated is None
    assert rotation.retired == (due.kid,)
    assert rotation.kept == ((kept.kid, keys.retirement_time(kept)),)
    assert (status_of(kept), status_of(due)) == ("retiring", "retired")


def test_the_first_rotation_of_an_algorithm_without_keys_prepares_a_next_key(clock):
    rotation = rotate_server_keys("ES384")
    assert rotation.activated is None
    assert ServerKey.objects.get(kid=rotation.next).status == "next"
    assert not ServerKey.objects.filter(alg="ES384", status="active").exists()


def test_a_ready_next_key_is_activated_even_with_no_active_key(clock):
    upcoming = stored("ES256", "next", created=T0 - datetime.timedelta(days=1))
    rotation = rotate_server_keys("ES256")
    assert (rotation.activated, rotation.retiring) == (upcoming.kid, None)
    assert ServerKey.objects.get(kid=rotation.next).status == "next"
    assert describe_rotation(rotation, T0) == (
        f"ES256: {upcoming.kid} is active; no key is retiring; next {rotation.next}."
    )


def test_an_unknown_algorithm_cannot_be_rotated():
    with pytest.raises(ConfigurationError) as refused:
        rotate_server_keys("HS256")
    assert str(refused.value) == f"Cannot rotate 'HS256'; choose one of {', '.join(keys.KEY_PARAMS)}."


def test_the_rotation_signal_names_the_server_key_model(django_capture_on_commit_callbacks):
    generate_server_key("ES256")
    received: list[Rotation] = []

    def receiver(sender: Any, rotation: Rotation, **kwargs: Any) -> None:
        received.append(rotation)

    server_key_rotated.connect(receiver, sender=ServerKey)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            rotation = rotate_server_keys("ES256")
    finally:
        server_key_rotated.disconnect(receiver, sender=ServerKey)
    assert received == [rotation]


def test_a_rotation_in_words():
    moment = T0 + datetime.timedelta(seconds=90)
    rotation = Rotation(
        alg="PS256",
        activated="k-new",
        retiring="k-old",
        next="k-next",
        retired=("k-a", "k-b"),
        kept=(("k-c", moment), ("k-d", T0)),
    )
    assert describe_rotation(rotation, T0) == (
        "PS256: k-new is active; k-old is retiring; next k-next; retired k-a, k-b; "
        f"kept k-c until {moment:%Y-%m-%d %H:%M:%S} UTC (in 90 s); "
        f"kept k-d until {T0:%Y-%m-%d %H:%M:%S} UTC (in 0 s)."
    )


# Which keys are due, and which key signs when -------------------------------------------------------


def test_algorithms_due_for_rotation_count_from_activation_or_else_creation():
    old, recent = timezone.now() - datetime.timedelta(days=100), timezone.now() - datetime.timedelta(days=1)
    stored("ES256", "active", created=old, activated=None)  # never recorded: judged by its creation
    stored("ES384", "active", created=recent, activated=None)
    stored("PS256", "active", created=old, activated=recent)  # activated lately: not due
    stored("PS384", "active", created=old, activated=old)
    assert algs_due_for_rotation(datetime.timedelta(days=90)) == ["ES256", "PS384"]


def _published(kid: str, alg: str, status: str, created: datetime.datetime) -> PublishedKey:
    return PublishedKey(kid=kid, alg=alg, status=status, public={}, encrypted="", created=created, retiring_since=None)


@pytest.mark.publication_wait
def test_the_signer_is_stable_until_a_waiting_active_key_of_that_algorithm_may_sign():
    refresh = datetime.timedelta(seconds=keys.publication_wait())
    published = PublishedKeys(
        keys=(
            _published("es-new", "ES256", "active", T0 - datetime.timedelta(seconds=0.25)),
            _published("es-next", "ES256", "next", T0),  # only an active key changes the signer
            _published("es-old", "ES256", "retiring", T0 - datetime.timedelta(days=1)),
            _published("ps-new", "PS256", "active", T0 - datetime.timedelta(seconds=0.5)),
        ),
        jwks_json=b"",
    )
    assert published.signer_stable_for("ES256", T0) == pytest.approx(refresh.total_seconds() - 0.25)
    assert published.signer_stable_for("PS256", T0) == pytest.approx(refresh.total_seconds() - 0.5)
    # From the moment the new key signs, nothing time alone changes is left.
    assert published.signer_stable_for("ES256", T0 - datetime.timedelta(seconds=0.25) + refresh) is None
    assert published.signer_stable_for("ES384", T0) is None
    # Every algorithm's new key signs once the longest of those waits is over.
    assert published.until_new_keys_sign(T0) == pytest.approx(refresh.total_seconds() - 0.25)
    assert published.until_new_keys_sign(T0 + refresh) == 0.0


def test_each_algorithm_signs_with_its_own_key_within_one_snapshot(make_app):
    es, ps = generate_server_key("ES256"), generate_server_key("PS256")
    ServerKey.objects.filter(pk__in=[es.pk, ps.pk]).update(created=timezone.now() - datetime.timedelta(hours=2))
    state.clear()
    app = make_app("code")
    first, second = get_signing_key("ES256", app), get_signing_key("PS256", app)
    assert (first.kid, first.jwk["kty"]) == (es.kid, "EC")
    assert (second.kid, second.jwk["kty"]) == (ps.kid, "RSA")


def test_an_ed25519_key_is_published_without_alg():
    eddsa, es = generate_server_key("EdDSA"), generate_server_key("ES256")
    published = {key["kid"]: key for key in Client().get("/o/.well-known/jwks.json").json()["keys"]}
    assert "alg" not in published[eddsa.kid]
    assert (published[eddsa.kid]["kty"], published[eddsa.kid]["crv"]) == ("OKP", "Ed25519")
    assert published[es.kid]["alg"] == "ES256"


# Storage -------------------------------------------------------------------------------------------


def test_reencrypt_counts_every_key_it_rewrote(settings):
    generate_server_key("ES256")
    generate_server_key("PS256")
    generate_server_key("ES256")  # next
    assert reencrypt_server_keys() == 3


def test_a_key_that_cannot_be_decrypted_is_named(settings):
    key = generate_server_key("ES256")
    settings.JARM = {"KEY_ENCRYPTION_SECRET": "another secret entirely, at least this long"}
    with pytest.raises(KeyDecryptionError) as refused:
        reencrypt_server_keys()
    assert str(refused.value).startswith(f"Server key {key.kid} cannot be decrypted with ")


def test_an_imported_key_keeps_the_status_asked_for():
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    imported = import_server_key(pem, "ES256", status="next")  # no key is active, yet it waits
    assert imported.status == "next"


def test_generated_rsa_keys_have_2048_bits_at_least_and_by_default():
    def bits(server_key: ServerKey) -> int:
        return keys.decrypt_private_key(server_key.private_jwk_encrypted).get_op_key("sign").key_size

    assert bits(generate_server_key("PS256")) == 2048
    assert bits(generate_server_key("PS256", rsa_size=1024)) == 2048
    assert bits(generate_server_key("PS256", rsa_size=3072)) == 3072


def test_a_second_active_key_is_refused_with_the_way_out():
    generate_server_key("ES256")
    with pytest.raises(LifecycleConflict) as refused:
        generate_server_key("ES256", status="active")
    assert str(refused.value) == "A ES256 key is already active; store this one as 'next' and activate it."


def test_a_key_stored_concurrently_is_a_conflict_not_a_database_error(monkeypatch):
    def collide(**fields: Any) -> ServerKey:
        raise IntegrityError("UNIQUE constraint failed: django_jarm_serverkey.kid")

    monkeypatch.setattr(ServerKey.objects, "create", collide)
    with pytest.raises(LifecycleConflict) as refused:
        generate_server_key("ES256")
    assert str(refused.value).endswith(" for ES256 conflicts with a key stored at the same time.")
    assert str(refused.value).startswith("Key ")
