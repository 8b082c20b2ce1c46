"""Server key lifecycle: activate, retire, rotate (with clients verifying across it), re-encrypt."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.utils import timezone

from django_jarm import keys, state
from django_jarm.exceptions import ConfigurationError, KeyUnavailable, LifecycleConflict
from django_jarm.keys import (
    activate_server_key,
    describe_rotation,
    generate_server_key,
    get_signing_key,
    reencrypt_server_keys,
    retire_server_key,
    rotate_server_keys,
)
from django_jarm.models import ServerKey
from django_jarm.signals import server_key_rotated
from tests import rp
from tests.conftest import ISSUER, REDIRECT_URI


def jwks_over_http() -> dict[str, Any]:
    return Client().get("/o/.well-known/jwks.json").json()


def status_of(kid: str) -> str:
    return ServerKey.objects.get(kid=kid).status


@pytest.mark.django_db
def test_responses_verify_before_during_and_after_rotation(
    browser, make_app, authorize, published_since, django_capture_on_commit_callbacks
):
    first = generate_server_key("PS256")
    published_since(first)
    app = make_app("code", jarm={"authorization_signed_response_alg": "PS256"})
    client = rp.RefreshingVerifier(jwks_over_http, issuer=ISSUER)

    def response() -> str:
        answer, _, _ = authorize(browser, app, "code", "jwt")
        return rp.jwt_of(rp.delivery_of(answer, REDIRECT_URI))

    before = response()
    assert client.verify(before, app.client_id).claims["aud"] == app.client_id

    with django_capture_on_commit_callbacks(execute=True):
        prepared = rotate_server_keys("PS256")  # first rotation: no "next" key existed yet
    assert (prepared.activated, prepared.retiring) == (None, None)
    assert status_of(first.kid) == "active"
    assert client.verify(response(), app.client_id).header["kid"] == first.kid

    published_since(ServerKey.objects.get(kid=prepared.next))  # one JWKS max-age later
    with django_capture_on_commit_callbacks(execute=True):
        rotation = rotate_server_keys("PS256")
    assert (rotation.activated, rotation.retiring) == (prepared.next, first.kid)
    during = response()
    assert client.verify(during, app.client_id).header["kid"] == prepared.next
    assert client.verify(before, app.client_id).claims["aud"] == app.client_id  # retiring: still published
    assert client.refreshes == 1  # the cached set predates the next key

    with django_capture_on_commit_callbacks(execute=True):
        too_soon = rotate_server_keys("PS256")  # back to back: the new next key is too young
    assert too_soon.activated is None
    assert [kid for kid, _ in too_soon.kept] == [first.kid]  # responses it signed are still alive

    published_since(*ServerKey.objects.filter(alg="PS256").exclude(status="retired"))
    with django_capture_on_commit_callbacks(execute=True):
        second = rotate_server_keys("PS256")
    assert second.activated == rotation.next  # published since the previous step
    assert second.retired == (first.kid,)
    after = response()
    assert client.verify(after, app.client_id).header["kid"] == rotation.next
    assert client.verify(during, app.client_id).claims["aud"] == app.client_id
    assert client.refreshes == 1  # the new active key was published, and fetched, one step ago

    published = {key["kid"] for key in jwks_over_http()["keys"]}
    assert first.kid not in published
    assert {second.activated, second.retiring, second.next} <= published
    assert ServerKey.objects.filter(alg="PS256", status="active").count() == 1


@pytest.mark.django_db
def test_rotation_waits_are_stated_with_their_reasons(published_since):
    active = generate_server_key("ES256")
    published_since(active)
    prepared = rotate_server_keys("ES256")
    described = describe_rotation(prepared)
    assert described.startswith(f"ES256: no key activated: the next key {prepared.next} can sign from ")
    assert "(in 3601 s), once clients' cached JWK Sets (max-age 3600 s) include it" in described
    with override_settings(JARM={"JWKS_MAX_AGE": 60, "STATE_REFRESH_SECONDS": 2}):
        assert "(in 62 s)" in describe_rotation(rotate_server_keys("ES256"))
        assert keys.activation_delay() == 62
        assert keys.retirement_delay() == 2 + 120 + 60


@pytest.mark.django_db
def test_force_skips_the_waits():
    active = generate_server_key("ES256")
    rotation = rotate_server_keys("ES256", force=True)
    assert rotation.activated is not None
    assert rotation.retiring == active.kid
    again = rotate_server_keys("ES256", force=True)
    assert again.retired == (active.kid,)


@pytest.mark.django_db
@pytest.mark.publication_wait
def test_a_new_key_signs_only_once_every_process_publishes_it(make_app, published_since):
    app = make_app("code")
    old = generate_server_key("ES256")
    published_since(old)
    fresh = generate_server_key("ES256")
    activate_server_key(fresh.kid, force=True)  # forced: published for 0 s
    state.clear()
    # Within STATE_REFRESH_SECONDS of storing it, another process may not publish it yet:
    # the key that signed before goes on signing.
    assert get_signing_key("ES256", app).kid == old.kid
    published_since(fresh, seconds=1)
    assert get_signing_key("ES256", app).kid == fresh.kid


@pytest.mark.django_db
@pytest.mark.publication_wait
def test_a_waiting_key_takes_over_when_its_wait_ends_with_nothing_else_changing(make_app, published_since):
    """The chosen signer is kept between requests, but never past the moment a waiting key may sign."""
    with override_settings(JARM={"STATE_REFRESH_SECONDS": 0.3}):
        app = make_app("code")
        old = generate_server_key("ES256")
        published_since(old)
        fresh = generate_server_key("ES256")
        activate_server_key(fresh.kid, force=True)
        assert get_signing_key("ES256", app).kid == old.kid
        assert get_signing_key("ES256", app).kid == old.kid  # kept, no query needed
        time.sleep(0.35)  # no database change: only the clock moves
        assert get_signing_key("ES256", app).kid == fresh.kid


@pytest.mark.django_db
@pytest.mark.publication_wait
def test_the_first_key_of_an_algorithm_signs_after_the_publication_wait(make_app, published_since):
    app = make_app("code")
    first = generate_server_key("ES384")
    with pytest.raises(KeyUnavailable, match="starts signing once every process publishes it"):
        get_signing_key("ES384", app)
    published_since(first, seconds=1)
    assert get_signing_key("ES384", app).kid == first.kid


@pytest.mark.django_db
def test_jwks_cache_control_matches_the_waits():
    response = Client().get("/o/.well-known/jwks.json")
    assert response["Cache-Control"] == "public, max-age=3600"
    with override_settings(JARM={"JWKS_MAX_AGE": 300}):
        assert Client().get("/o/.well-known/jwks.json")["Cache-Control"] == "public, max-age=300"
        assert keys.activation_delay() == 301


@pytest.mark.django_db
def test_rotation_signal(django_capture_on_commit_callbacks):
    generate_server_key("ES256")
    received = []

    def receiver(sender, rotation, **kwargs):
        received.append(rotation)

    server_key_rotated.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            rotation = rotate_server_keys("ES256")
    finally:
        server_key_rotated.disconnect(receiver)
    assert received == [rotation]


@pytest.mark.django_db
def test_activate_and_retire(published_since):
    active = generate_server_key("ES256")
    upcoming = generate_server_key("ES256")
    assert upcoming.status == "next"
    with pytest.raises(LifecycleConflict, match="clients may cache the JWK Set for 3600 s") as excinfo:
        activate_server_key(upcoming.kid)
    assert 3590 < excinfo.value.retry_after <= 3601
    published_since(upcoming)
    activate_server_key(upcoming.kid)
    assert (status_of(active.kid), status_of(upcoming.kid)) == ("retiring", "active")
    with pytest.raises(ConfigurationError, match="activate another ES256 key first"):
        retire_server_key(upcoming.kid)
    with pytest.raises(LifecycleConflict, match="responses live 120 s, clients cache the JWK Set 3600 s") as excinfo:
        retire_server_key(active.kid)
    assert 3700 < excinfo.value.retry_after <= 3721
    published_since(ServerKey.objects.get(kid=active.kid))
    retire_server_key(active.kid)
    assert status_of(active.kid) == "retired"
    with pytest.raises(ConfigurationError, match="retired"):
        activate_server_key(active.kid)
    with pytest.raises(ConfigurationError, match="No server key"):
        activate_server_key("nope")


@pytest.mark.django_db
def test_rotate_if_older_than_is_cron_safe(capsys, published_since):
    old = generate_server_key("PS256")
    ServerKey.objects.filter(pk=old.pk).update(activated=timezone.now() - datetime.timedelta(days=91))
    fresh = generate_server_key("ES256")

    call_command("jarm_keys", "rotate", "--if-older-than", "90d")  # day 1: prepares the next key
    assert status_of(old.kid) == "active"
    assert "PS256: no key activated: the next key" in capsys.readouterr().out
    published_since(ServerKey.objects.get(alg="PS256", status="next"))

    call_command("jarm_keys", "rotate", "--if-older-than", "90d")  # day 2: activates it
    assert status_of(old.kid) == "retiring"
    assert status_of(fresh.kid) == "active"
    assert "is active; " + old.kid + " is retiring" in capsys.readouterr().out

    call_command("jarm_keys", "rotate", "--if-older-than", "90d")  # nothing is due any more
    assert "No active key is old enough" in capsys.readouterr().out
    assert ServerKey.objects.filter(alg="PS256").count() == 3


@pytest.mark.django_db
def test_command_lifecycle(capsys):
    call_command("jarm_keys", "generate", "--alg", "EdDSA")
    call_command("jarm_keys", "generate", "--alg", "EdDSA")
    upcoming = ServerKey.objects.get(status="next")
    assert "It can be activated from " in capsys.readouterr().out
    with pytest.raises(CommandError, match="or force it now"):
        call_command("jarm_keys", "activate", f"--kid={upcoming.kid}")
    call_command("jarm_keys", "activate", f"--kid={upcoming.kid}", "--force")
    assert status_of(upcoming.kid) == "active"
    retiring = ServerKey.objects.get(status="retiring")
    with pytest.raises(CommandError, match="retire it from"):
        call_command("jarm_keys", "retire", f"--kid={retiring.kid}")
    call_command("jarm_keys", "retire", f"--kid={retiring.kid}", "--force")
    assert status_of(retiring.kid) == "retired"
    call_command("jarm_keys", "rotate", "--alg", "EdDSA")
    out = capsys.readouterr().out
    assert "EdDSA: no key activated" in out
    call_command("jarm_keys", "rotate", "--alg", "EdDSA", "--force")
    assert "EdDSA: " + ServerKey.objects.get(status="active").kid + " is active" in capsys.readouterr().out
    with pytest.raises(CommandError, match="--alg"):
        call_command("jarm_keys", "rotate")
    with pytest.raises(CommandError, match="activate another EdDSA key first"):
        call_command("jarm_keys", "retire", f"--kid={ServerKey.objects.get(status='active').kid}")
    with pytest.raises(CommandError, match="Give the key id"):
        call_command("jarm_keys", "activate")


@pytest.mark.django_db
def test_kids_starting_with_a_dash(capsys):
    key = ServerKey.objects.create(
        kid="-starts-with-a-dash", alg="ES256", kty="EC", crv="P-256", status="next", public_jwk={}
    )
    call_command("jarm_keys", "retire", "--kid=-starts-with-a-dash")
    assert status_of(key.kid) == "retired"
    assert "is retired" in capsys.readouterr().out


@pytest.mark.django_db
def test_reencrypt_moves_keys_to_the_new_secret(browser, make_app, authorize, verify):
    old_secret = "the old key encryption secret, 32+ chars long"
    new_secret = "the new key encryption secret, 32+ chars long"
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": old_secret}):
        key = generate_server_key("ES256")
    app = make_app("code", jarm={"authorization_signed_response_alg": "ES256"})
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": new_secret}):
        response, _, _ = authorize(browser, app, "code", "jwt")
        assert dict(rp.delivery_of(response, REDIRECT_URI).params)["error"] == "server_error"
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": new_secret, "KEY_ENCRYPTION_SECRET_FALLBACKS": [old_secret]}):
        assert reencrypt_server_keys() == 1
    from django_jarm.state import clear as clear_caches

    clear_caches()
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": new_secret}):
        response, _, _ = authorize(browser, app, "code", "jwt")
        assert verify(response, app)[1].header["kid"] == key.kid


@pytest.mark.django_db
def test_secret_key_fallbacks_are_honoured(user, make_app, authorize, verify):
    with override_settings(SECRET_KEY="the secret key of last year"):
        generate_server_key("ES256")
    app = make_app("code", jarm={"authorization_signed_response_alg": "ES256"})
    with override_settings(
        SECRET_KEY="the secret key of this year", SECRET_KEY_FALLBACKS=["the secret key of last year"]
    ):
        browser = Client()
        browser.force_login(user)
        response, _, _ = authorize(browser, app, "code", "jwt")
        assert verify(response, app)[1].header["alg"] == "ES256"
