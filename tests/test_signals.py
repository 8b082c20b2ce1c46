from __future__ import annotations

import pytest

from django_jarm.signals import response_issued


@pytest.fixture
def issued():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    response_issued.connect(receiver)
    yield received
    response_issued.disconnect(receiver)


@pytest.mark.django_db
def test_response_issued_describes_the_response_without_secrets(browser, make_app, authorize, verify, issued):
    app = make_app("code id_token")
    response, _, _ = authorize(browser, app, "code id_token", "form_post.jwt")
    _, verified = verify(response, app)
    (event,) = issued
    assert {k: v for k, v in event.items() if k not in ("request", "signal")} == {
        "client_id": app.client_id,
        "response_mode": "form_post.jwt",
        "alg": "RS256",
        "kid": verified.header["kid"],
        "encrypted": False,
        "error": None,
    }
    secrets = [verified.claims["code"], verified.claims["id_token"], verified.claims["state"], app.plain_secret]
    described = repr({k: v for k, v in event.items() if k != "request"})  # the request is the client's own
    assert not any(secret in described for secret in secrets)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("jarm", "mode", "expected"),
    [
        (None, "query", {"response_mode": "query", "alg": None, "error": None}),
        (None, "bogus", {"response_mode": "query", "alg": None, "error": "invalid_request"}),
        ({"authorization_signed_response_alg": "ES384"}, "jwt", {"response_mode": "query", "error": "server_error"}),
    ],
)
def test_response_issued_for_plain_and_failed_responses(browser, make_app, authorize, issued, jarm, mode, expected):
    app = make_app("code", jarm=jarm)
    authorize(browser, app, "code", mode)
    (event,) = issued
    assert {k: event[k] for k in expected} == expected


@pytest.mark.django_db
def test_a_failing_receiver_never_turns_the_response_into_an_error(browser, make_app, authorize, verify, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver failed")

    response_issued.connect(broken)
    try:
        app = make_app("code")
        response, _, _ = authorize(browser, app, "code", "jwt")
    finally:
        response_issued.disconnect(broken)
    _, verified = verify(response, app)
    assert "code" in verified.params
    assert any(record.name == "django.dispatch" and record.exc_info for record in caplog.records)
