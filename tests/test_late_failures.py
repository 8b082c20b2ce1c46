"""Never in the clear: what a client sees when the JWT cannot be built after DOT issued the grant.

Every request goes through the real authorization endpoint, for every response type DOT serves
and every JWT mode. Two families of cases:

* **late failures** — signing or encrypting fails after DOT issued the code or tokens: the answer
  is ``server_error`` (with ``state``) in the plain twin of the mode, carrying no grant
  parameter anywhere (query, fragment or form body), and whatever DOT issued is revoked: the
  code cannot be redeemed, the access token is refused at the userinfo endpoint;
* **races** — the keys change between planning and delivery (a server key deleted, the key store
  unreadable, the client's key replaced or removed): the response is built from the keys the
  plan resolved, before any code existed, so the answer is still one JWT, verified and decrypted
  here with joserfc, whose grant works.

A failure before the plan (the key store unreadable when the request arrives) is answered
``server_error`` before DOT issues anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from oauth2_provider.models import get_access_token_model, get_grant_model, get_id_token_model

from django_jarm import authorization, keys, state, tokens
from django_jarm.authorization import ResponsePlanner
from django_jarm.exceptions import SERVER_ERROR, ResponseBuildError
from django_jarm.keys import generate_server_key
from django_jarm.models import ClientSettings, ServerKey
from tests import rp
from tests.conftest import REDIRECT_URI, RESPONSE_TYPES

pytestmark = pytest.mark.django_db

JWT_MODES = ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"]
#: Response parameters that carry (or describe) a grant: none may travel outside a JWT.
GRANT_PARAMETERS = {"code", "access_token", "id_token", "token_type", "expires_in", "scope", "refresh_token"}
STATE = "af0ifjsldkj"
#: The client's encryption key pair, made once: every encrypted client here shares it.
RECIPIENT = RSAKey.generate_key(2048, parameters={"use": "enc", "kid": "rp-enc-1"})
REPLACEMENT = RSAKey.generate_key(2048, parameters={"use": "enc", "kid": "rp-enc-2"})
ENCRYPTION = ("RSA-OAEP-256", "A128CBC-HS256")


def carries_tokens(response_type: str) -> bool:
    return bool({"token", "id_token"} & set(response_type.split()))


def plain_twin(mode: str, response_type: str) -> str:
    """The plain mode a server_error for ``mode`` is delivered in (DESIGN 2)."""
    if mode == "jwt":
        return "fragment" if carries_tokens(response_type) else "query"
    return mode.removesuffix(".jwt")


def needs_encryption(mode: str, response_type: str) -> bool:
    # JARM 2.3.1: query.jwt carries tokens only encrypted; otherwise the request is refused.
    return mode == "query.jwt" and carries_tokens(response_type)


@pytest.fixture
def client_for(make_app: Callable[..., Any]) -> Callable[..., Any]:
    """A client signing ES256 (with a fresh server key), encrypted to RECIPIENT when asked."""

    def make(response_type: str, *, encrypted: bool) -> Any:
        generate_server_key("ES256")
        jarm: dict[str, Any] = {"authorization_signed_response_alg": "ES256"}
        if encrypted:
            jarm.update(
                authorization_encrypted_response_alg=ENCRYPTION[0],
                authorization_encrypted_response_enc=ENCRYPTION[1],
                jwks={"keys": [RECIPIENT.as_dict(private=False)]},
            )
        return make_app(response_type, jarm=jarm)

    return make


@pytest.fixture
def issued(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[dict[str, str]]]:
    """Record what DOT issued (the parameters handed to deliver); run ``between`` first."""

    def spy(between: Callable[[], None] | None = None) -> list[dict[str, str]]:
        seen: list[dict[str, str]] = []
        original = ResponsePlanner.deliver

        def deliver(self: ResponsePlanner, http_request: Any, plan: Any, params: Any) -> Any:
            seen.append(dict(params))
            if between is not None:
                between()
            return original(self, http_request, plan, params)

        monkeypatch.setattr(ResponsePlanner, "deliver", deliver)
        return seen

    return spy


def everything_outside_a_jwt(response: Any) -> list[tuple[str, str]]:
    """Every parameter the answer carries in the clear: Location query and fragment, form inputs."""
    if response.status_code in (302, 303):
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(response["Location"])
        return parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(parts.fragment, keep_blank_values=True)
    assert response.status_code == 200, response.status_code
    _, _, inputs, _ = rp.parse_form_post(response.content.decode())
    return inputs


def assert_grant_unusable(app: Any, grant: dict[str, str], redeem: Callable[..., Any], browser: Any) -> None:
    """What DOT issued before the failure can no longer be used."""
    if "code" in grant:
        answer = redeem(app, grant["code"], "any-verifier-" + "x" * 40)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"
    if "access_token" in grant:
        answer = browser.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {grant['access_token']}")
        assert answer.status_code == 401
    assert get_grant_model().objects.count() == 0
    assert get_access_token_model().objects.count() == 0


MATRIX = [(response_type, mode) for response_type in RESPONSE_TYPES for mode in JWT_MODES]


def _corrupt_stored_key() -> None:
    """The key store holds a key that cannot sign: its stored private part is only a public key."""
    from jwcrypto import jwe
    from jwcrypto.common import json_encode

    server_key = ServerKey.objects.get(alg="ES256")
    storage_key = keys._storage_key(keys._key_encryption_secrets()[0])
    envelope = jwe.JWE(
        json_encode(server_key.public_jwk).encode("utf-8"),
        protected=json_encode({"alg": "dir", "enc": "A256GCM", "kid": storage_key.thumbprint()}),
    )
    envelope.add_recipient(storage_key)
    ServerKey.objects.filter(pk=server_key.pk).update(private_jwk_encrypted=envelope.serialize(compact=True))
    state.clear()


class _FailingKeyManagement:
    """jwcrypto's key wrapping failing inside tokens.encrypt (as on a key it cannot use)."""

    wrap_key_size = 256

    def wrap(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("simulated key wrapping failure")


def _fail(*args: Any, **kwargs: Any) -> str:
    raise ResponseBuildError("simulated")


#: How each late failure is forced; ``encrypted``: whether the client must encrypt for it to apply.
LATE_FAILURES: dict[str, tuple[bool, Callable[[pytest.MonkeyPatch], None]]] = {
    "sign-raises": (False, lambda mp: mp.setattr(tokens, "sign", _fail)),
    "signing-key-unusable": (False, lambda mp: _corrupt_stored_key()),
    "encrypt-raises": (True, lambda mp: mp.setattr(tokens, "encrypt", _fail)),
    "key-wrap-fails": (
        True,
        lambda mp: mp.setitem(tokens._KEY_MANAGEMENT, ENCRYPTION[0], _FailingKeyManagement()),
    ),
}


@pytest.mark.parametrize("failure", list(LATE_FAILURES))
@pytest.mark.parametrize(("response_type", "mode"), MATRIX)
def test_a_late_failure_answers_server_error_in_the_clear_and_revokes_the_grant(
    browser, client_for, authorize, redeem, issued, monkeypatch, failure, response_type, mode
):
    needs_key, force = LATE_FAILURES[failure]
    app = client_for(response_type, encrypted=needs_key or needs_encryption(mode, response_type))
    force(monkeypatch)
    handed = issued()

    response, _, _ = authorize(browser, app, response_type, mode)

    # DOT did issue the grant the response type asks for before the JWT failed.
    assert len(handed) == 1
    assert {"code", "access_token", "id_token"} & set(handed[0]) == (
        set(response_type.split()) - {"token"} | ({"access_token"} if "token" in response_type.split() else set())
    )
    # Nothing of it reaches the client: only server_error, in the plain twin of the mode.
    clear = everything_outside_a_jwt(response)
    assert not GRANT_PARAMETERS & {name for name, _ in clear}
    assert sorted(clear) == sorted(SERVER_ERROR.params(STATE))
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == plain_twin(mode, response_type)
    assert "no-store" in delivery.headers["cache-control"].replace(" ", "").split(",")
    assert_grant_unusable(app, handed[0], redeem, browser)


def test_a_late_failure_whose_revocation_fails_still_answers_server_error(
    browser, client_for, authorize, issued, monkeypatch, caplog
):
    """The grant stays stored, but it was never delivered: no one holds the code or the token."""
    app = client_for("code token", encrypted=False)
    monkeypatch.setattr(tokens, "sign", _fail)

    def broken(values: dict[str, str]) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(authorization, "_delete_issued", broken)
    handed = issued()
    response, _, _ = authorize(browser, app, "code token", "fragment.jwt")
    assert sorted(everything_outside_a_jwt(response)) == sorted(SERVER_ERROR.params(STATE))
    assert "Revoking an undeliverable grant failed: RuntimeError" in caplog.text
    for value in handed[0].values():
        assert value not in caplog.text


def test_a_late_failure_is_signalled_as_the_plain_server_error_it_delivered(
    browser, client_for, authorize, monkeypatch
):
    from django_jarm.signals import response_issued

    events: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        events.append(kwargs)

    app = client_for("code id_token token", encrypted=True)
    monkeypatch.setattr(tokens, "encrypt", _fail)
    response_issued.connect(receiver)
    try:
        authorize(browser, app, "code id_token token", "form_post.jwt")
    finally:
        response_issued.disconnect(receiver)
    (event,) = events
    assert {name: value for name, value in event.items() if name not in ("request", "signal")} == {
        "client_id": app.client_id,
        "response_mode": "form_post",
        "alg": None,
        "kid": None,
        "encrypted": False,
        "error": "server_error",
    }


# Races: the keys change between plan and delivery ---------------------------------------------


def _delete_server_keys() -> None:
    ServerKey.objects.all().delete()
    state.clear()


def _make_key_store_unreadable() -> None:
    ServerKey.objects.update(private_jwk_encrypted="not-a-jwe")
    state.clear()


def _replace_client_key() -> None:
    ClientSettings.objects.update(jwks={"keys": [REPLACEMENT.as_dict(private=False)]})
    state.clear()


def _remove_client_settings() -> None:
    ClientSettings.objects.all().delete()
    state.clear()


RACES: dict[str, tuple[bool, Callable[[], None]]] = {
    "server-key-deleted": (False, _delete_server_keys),
    "key-store-unreadable": (False, _make_key_store_unreadable),
    "client-key-replaced": (True, _replace_client_key),
    "client-settings-removed": (True, _remove_client_settings),
}


@pytest.mark.parametrize("race", list(RACES))
@pytest.mark.parametrize(("response_type", "mode"), MATRIX)
def test_keys_changing_after_the_plan_still_get_the_planned_jwt(
    browser, client_for, authorize, redeem, issued, jwks, discovery, race, response_type, mode
):
    needs_key, change = RACES[race]
    encrypted = needs_key or needs_encryption(mode, response_type)
    app = client_for(response_type, encrypted=encrypted)
    published, issuer = jwks(), discovery()["issuer"]  # what the client holds before the request
    handed = issued(between=change)

    response, verifier, _ = authorize(browser, app, response_type, mode)

    assert len(handed) == 1
    delivery = rp.delivery_of(response, REDIRECT_URI)
    assert delivery.mode == plain_twin(mode, response_type)
    token = rp.jwt_of(delivery)  # exactly one parameter in the clear: response
    if encrypted:
        header, token = rp.decrypt_response(token, RECIPIENT, alg=ENCRYPTION[0], enc=ENCRYPTION[1])
        assert header["kid"] == RECIPIENT.kid
    verified = rp.verify_response(token, jwks=published, issuer=issuer, client_id=app.client_id)
    assert verified.header["alg"] == "ES256"
    assert {name: verified.claims[name] for name in handed[0] if name != "expires_in"} == {
        name: value for name, value in handed[0].items() if name != "expires_in"
    }
    assert verified.claims["state"] == STATE
    if "code" in handed[0]:
        assert redeem(app, handed[0]["code"], verifier).status_code == 200


# Before the plan: the key store unreadable when the request arrives ----------------------------


@pytest.mark.parametrize(("response_type", "mode"), MATRIX)
def test_an_unreadable_key_store_is_server_error_before_any_grant(
    browser, client_for, authorize, issued, settings, response_type, mode
):
    app = client_for(response_type, encrypted=needs_encryption(mode, response_type))
    # The storage secret changed without a fallback: the stored key cannot be decrypted.
    settings.JARM = {**getattr(settings, "JARM", {}), "KEY_ENCRYPTION_SECRET": "another secret entirely"}
    keys._storage_key.cache_clear()
    handed = issued()
    response, _, _ = authorize(browser, app, response_type, mode)
    assert handed == [dict(SERVER_ERROR.params(STATE))]
    assert sorted(everything_outside_a_jwt(response)) == sorted(SERVER_ERROR.params(STATE))
    assert rp.delivery_of(response, REDIRECT_URI).mode == plain_twin(mode, response_type)
    assert get_grant_model().objects.count() == 0
    assert get_access_token_model().objects.count() == 0
    assert get_id_token_model().objects.count() == 0
