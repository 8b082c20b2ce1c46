"""Server key lifecycle: activate, retire, rotate (with clients verifying across it), re-encrypt."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.utils import timezone
from joserfc import jwt
from joserfc.jwk import KeySet

from django_jarm.exceptions import ConfigurationError
from django_jarm.keys import (
    activate_server_key,
    generate_server_key,
    reencrypt_server_keys,
    retire_server_key,
    rotate_server_keys,
)
from django_jarm.models import ServerKey
from django_jarm.signals import server_key_rotated
from tests import rp
from tests.conftest import REDIRECT_URI


class RefreshingClient:
    """A relying party that caches the JWKS and re-fetches it once on an unknown kid."""

    def __init__(self) -> None:
        self.jwks = self.fetch()
        self.refreshes = 0

    @staticmethod
    def fetch() -> dict[str, Any]:
        return Client().get("/o/.well-known/jwks.json").json()

    def verify(self, token: str) -> dict[str, Any]:
        kid = jwt.decode(token, KeySet.import_key_set(self.fetch()), algorithms=["PS256"]).header["kid"]
        if kid not in {key["kid"] for key in self.jwks["keys"]}:
            self.jwks = self.fetch()
            self.refreshes += 1
        return dict(jwt.decode(token, KeySet.import_key_set(self.jwks), algorithms=["PS256"]).claims)


def status_of(kid: str) -> str:
    return ServerKey.objects.get(kid=kid).status


@pytest.mark.django_db
def test_responses_verify_before_during_and_after_rotation(
    browser, make_app, authorize, django_capture_on_commit_callbacks
):
    first = generate_server_key("PS256")
    app = make_app("code", jarm={"authorization_signed_response_alg": "PS256"})
    client = RefreshingClient()

    def response() -> str:
        answer, _, _ = authorize(browser, app, "code", "jwt")
        return rp.jwt_of(rp.delivery_of(answer, REDIRECT_URI))

    before = response()
    assert client.verify(before)["aud"] == app.client_id

    with django_capture_on_commit_callbacks(execute=True):
        rotation = rotate_server_keys("PS256")  # first rotation: no "next" key existed yet
    assert rotation.retiring == first.kid
    during = response()
    assert client.verify(during)["aud"] == app.client_id  # unknown kid: one refresh
    assert client.verify(before)["aud"] == app.client_id  # the retiring key is still published
    assert client.refreshes == 1

    with django_capture_on_commit_callbacks(execute=True):
        second = rotate_server_keys("PS256")
    assert second.activated == rotation.next  # published since the previous step
    assert second.retired == (first.kid,)
    after = response()
    assert client.verify(after)["aud"] == app.client_id
    assert client.verify(during)["aud"] == app.client_id
    assert client.refreshes == 1  # the new active key was already in the cached JWKS

    published = {key["kid"] for key in RefreshingClient.fetch()["keys"]}
    assert first.kid not in published
    assert {second.activated, second.retiring, second.next} <= published
    assert ServerKey.objects.filter(alg="PS256", status="active").count() == 1


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
def test_activate_and_retire():
    active = generate_server_key("ES256")
    upcoming = generate_server_key("ES256")
    assert upcoming.status == "next"
    activate_server_key(upcoming.kid)
    assert (status_of(active.kid), status_of(upcoming.kid)) == ("retiring", "active")
    with pytest.raises(ConfigurationError, match="activate another ES256 key first"):
        retire_server_key(upcoming.kid)
    retire_server_key(active.kid)
    assert status_of(active.kid) == "retired"
    with pytest.raises(ConfigurationError, match="retired"):
        activate_server_key(active.kid)
    with pytest.raises(ConfigurationError, match="No server key"):
        activate_server_key("nope")


@pytest.mark.django_db
def test_rotate_if_older_than_is_cron_safe(capsys):
    old = generate_server_key("PS256")
    ServerKey.objects.filter(pk=old.pk).update(activated=timezone.now() - datetime.timedelta(days=91))
    fresh = generate_server_key("ES256")

    call_command("jarm_keys", "rotate", "--if-older-than", "90d")
    assert status_of(old.kid) == "retiring"
    assert status_of(fresh.kid) == "active"
    assert "PS256: active" in capsys.readouterr().out

    call_command("jarm_keys", "rotate", "--if-older-than", "90d")  # nothing is due any more
    assert "No active key is old enough" in capsys.readouterr().out
    assert ServerKey.objects.filter(alg="PS256").count() == 3


@pytest.mark.django_db
def test_command_lifecycle(capsys):
    call_command("jarm_keys", "generate", "--alg", "EdDSA")
    call_command("jarm_keys", "generate", "--alg", "EdDSA")
    upcoming = ServerKey.objects.get(status="next")
    call_command("jarm_keys", "activate", f"--kid={upcoming.kid}")
    assert status_of(upcoming.kid) == "active"
    retiring = ServerKey.objects.get(status="retiring")
    call_command("jarm_keys", "retire", f"--kid={retiring.kid}")
    assert status_of(retiring.kid) == "retired"
    call_command("jarm_keys", "rotate", "--alg", "EdDSA")
    out = capsys.readouterr().out
    assert "EdDSA: active" in out
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
    from django_jarm.keys import clear_caches

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
