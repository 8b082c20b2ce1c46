from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from oauth2_provider.models import get_application_model

from django_jarm import keys, state, tokens
from django_jarm.models import ClientSettings
from tests import rp

Application = get_application_model()

# In CI the property-based tests replay the same examples on every run (a new finding shows up
# in development runs, which draw fresh examples, not as a surprise failure of an unrelated change).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def examples(count: int) -> hypothesis_settings:
    """``count`` examples, or JARM_HYPOTHESIS_EXAMPLES of them in a fuzzing campaign (fresh seeds)."""
    return hypothesis_settings(
        max_examples=int(os.environ.get("JARM_HYPOTHESIS_EXAMPLES", count)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


ISSUER = "http://testserver/o"
REDIRECT_URI = "https://rp.example/cb"

GRANT_OF_RESPONSE_TYPE = {
    "code": Application.GRANT_AUTHORIZATION_CODE,
    "token": Application.GRANT_IMPLICIT,
    "id_token": Application.GRANT_IMPLICIT,
    "id_token token": Application.GRANT_IMPLICIT,
    "code id_token": Application.GRANT_OPENID_HYBRID,
    "code token": Application.GRANT_OPENID_HYBRID,
    "code id_token token": Application.GRANT_OPENID_HYBRID,
}
RESPONSE_TYPES = list(GRANT_OF_RESPONSE_TYPE)


@pytest.fixture(autouse=True)
def _single_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In one test process every process is this one: a new key is published as soon as it is stored.

    Tests of the wait itself (and the multi-process tests, whose servers wait for real) are
    marked ``publication_wait``.
    """
    if request.node.get_closest_marker("publication_wait") is None:
        monkeypatch.setattr(keys, "publication_wait", lambda: 0.0)


def _clear_caches() -> None:
    cache.clear()
    state.clear()
    # Prepared signatures and key wrapping, by key identity: each test prepares its own keys
    # (and mutation testing's coverage run sees every test that prepares one).
    tokens._PREPARED.clear()
    tokens._WRAPS.clear()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def browser(user: Any) -> Client:
    """A logged-in user agent."""
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def make_app(user: Any) -> Callable[..., Any]:
    """Factory of OAuth clients; ``jarm={...}`` adds a ClientSettings row."""

    def make(
        response_type: str = "code",
        *,
        client_type: str = Application.CLIENT_CONFIDENTIAL,
        redirect_uris: str = REDIRECT_URI,
        skip_authorization: bool = True,
        hash_client_secret: bool = True,
        client_secret: str | None = None,
        jarm: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Any:
        secret = client_secret or secrets.token_urlsafe(48)
        app = Application.objects.create(
            name=f"client {response_type}",
            user=user,
            client_type=client_type,
            authorization_grant_type=GRANT_OF_RESPONSE_TYPE[response_type],
            redirect_uris=redirect_uris,
            skip_authorization=skip_authorization,
            hash_client_secret=hash_client_secret,
            client_secret=secret,
            algorithm=Application.RS256_ALGORITHM,
            **fields,
        )
        if jarm is not None:
            ClientSettings.objects.create(application=app, **jarm)
            app = Application.objects.get(pk=app.pk)
        app.plain_secret = secret
        return app

    return make


def form_encoded(data: dict[str, str] | list[tuple[str, str]]) -> dict[str, Any]:
    """Client.post() arguments for an application/x-www-form-urlencoded body (RFC 6749 3.2, RFC 9126 2.1)."""
    return {"data": urlencode(data), "content_type": "application/x-www-form-urlencoded"}


def push_request(app: Any, params: list[tuple[str, str]]) -> str:
    """Push an authorization request to DOT's PAR endpoint (RFC 9126 2.1); returns its request_uri."""
    body = list(params)
    if app.client_type == Application.CLIENT_CONFIDENTIAL:
        body.append(("client_secret", app.plain_secret))
    response = Client().post("/o/par/", **form_encoded(body))
    assert response.status_code == 201, response.content
    request_uri: str = response.json()["request_uri"]
    return request_uri


@pytest.fixture
def authorize() -> Callable[..., Any]:
    """Send an authorization request; returns (response, code_verifier, query).

    ``pushed=True`` pushes the parameters to the PAR endpoint first and sends only client_id
    and request_uri to the authorization endpoint (RFC 9126 4).
    """

    def send(
        client: Client,
        app: Any,
        response_type: str = "code",
        response_mode: str | list[str] | None = None,
        *,
        state: str | None = "af0ifjsldkj",
        scope: str = "openid read",
        redirect_uri: str | None = REDIRECT_URI,
        nonce: str | None = "n-0S6_WzA2Mj",
        extra: dict[str, Any] | None = None,
        pushed: bool = False,
    ) -> tuple[Any, str, list[tuple[str, str]]]:
        verifier, challenge = rp.pkce_pair()
        query: list[tuple[str, str]] = [("client_id", app.client_id), ("response_type", response_type)]
        if redirect_uri is not None:
            query.append(("redirect_uri", redirect_uri))
        if scope:
            query.append(("scope", scope))
        if state is not None:
            query.append(("state", state))
        if nonce is not None:
            query.append(("nonce", nonce))
        if "code" in response_type.split():
            query += [("code_challenge", challenge), ("code_challenge_method", "S256")]
        modes = [response_mode] if isinstance(response_mode, str) else (response_mode or [])
        query += [("response_mode", mode) for mode in modes]
        query += list((extra or {}).items())
        if pushed:
            query = [("client_id", app.client_id), ("request_uri", push_request(app, query))]
        return client.get("/o/authorize/?" + urlencode(query)), verifier, query

    return send


@pytest.fixture
def jwks() -> Callable[[], dict[str, Any]]:
    """The server's JWKS, fetched over HTTP as a client would."""

    def fetch() -> dict[str, Any]:
        response = Client().get("/o/.well-known/jwks.json")
        assert response.status_code == 200
        return response.json()

    return fetch


@pytest.fixture
def discovery() -> Callable[[], dict[str, Any]]:
    def fetch() -> dict[str, Any]:
        response = Client().get("/o/.well-known/openid-configuration")
        assert response.status_code == 200
        return response.json()

    return fetch


@pytest.fixture
def verify(jwks: Callable[[], dict[str, Any]], discovery: Callable[[], dict[str, Any]]) -> Callable[..., Any]:
    """Extract and verify the JARM response of an authorization endpoint answer."""

    def check(response: Any, app: Any, *, redirect_uri: str = REDIRECT_URI) -> tuple[rp.Delivery, rp.VerifiedResponse]:
        delivery = rp.delivery_of(response, redirect_uri)
        token = rp.jwt_of(delivery)
        verified = rp.verify_response(
            token,
            jwks=jwks(),
            issuer=discovery()["issuer"],
            client_id=app.client_id,
            client_secret=getattr(app, "plain_secret", None),
        )
        return delivery, verified

    return check


@pytest.fixture
def redeem() -> Callable[..., Any]:
    """Exchange a code at DOT's token endpoint."""

    def exchange(app: Any, code: str, verifier: str, *, redirect_uri: str = REDIRECT_URI) -> Any:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": app.client_id,
            "code_verifier": verifier,
        }
        if app.client_type == Application.CLIENT_CONFIDENTIAL:
            data["client_secret"] = app.plain_secret
        return Client().post("/o/token/", **form_encoded(data))

    return exchange


@pytest.fixture
def published_since() -> Callable[..., None]:
    """Backdate server keys: ``published_since(key, seconds=...)`` as if stored that long ago."""

    def backdate(*server_keys: Any, seconds: float = 7200) -> None:
        import datetime

        from django.utils import timezone

        from django_jarm.models import ServerKey

        moment = timezone.now() - datetime.timedelta(seconds=seconds)
        for server_key in server_keys:
            ServerKey.objects.filter(pk=server_key.pk).update(created=moment)
            ServerKey.objects.filter(pk=server_key.pk, retiring_since__isnull=False).update(retiring_since=moment)
            server_key.refresh_from_db()
        state.clear()

    return backdate


@contextlib.contextmanager
def serving(*, logged: bool = False) -> Iterator[tuple[str, int]]:
    """The test project behind a real threaded HTTP server on 127.0.0.1 (one thread per request).

    ``logged``: request lines go to the ``django.server`` logger, as under ``runserver``.
    """
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.db import connections

    shared = {}
    for connection in connections.all():
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            connection.inc_thread_sharing()  # the server threads see the test's in-memory database
            shared[connection.alias] = connection

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadedWSGIServer(
        ("127.0.0.1", 0), WSGIRequestHandler if logged else QuietHandler, connections_override=shared
    )
    httpd.set_app(WSGIHandler())  # not get_wsgi_application(): django.setup() would reset logging
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", httpd.server_port
    finally:
        httpd.shutdown()
        httpd.server_close()
        for connection in shared.values():
            connection.dec_thread_sharing()


@pytest.fixture
def http_server() -> Iterator[tuple[str, int]]:
    with serving() as address:
        yield address
