"""Performance budget of the authorization endpoint, checked by counting, never by timing.

With warm caches, a JARM response costs at most one database query more than the same plain
response, and no key is parsed (decrypted from storage, or read from PEM/JSON) on the request
path. The timed comparisons live in ``benchmarks/`` (``python benchmarks/run.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import include, path
from jwcrypto import jwk
from oauth2_provider import views as dot_views

from django_jarm import keys
from tests import rp
from tests.conftest import REDIRECT_URI

# This module is also the URLconf of its tests: the JARM views under o/, as in the test
# project, and DOT's own authorization view under dot/ as the plain baseline.
urlpatterns = [
    path("o/", include("django_jarm.urls")),
    path("dot/authorize/", dot_views.AuthorizationView.as_view()),
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

WARMUP = 2
REQUESTS = 5

CLIENTS: dict[str, dict[str, Any] | None] = {
    "no settings (RS256, DOT's key)": None,
    "ES256": {"authorization_signed_response_alg": "ES256"},
    "PS256": {"authorization_signed_response_alg": "PS256"},
    "PS256 + RSA-OAEP-256": {
        "authorization_signed_response_alg": "PS256",
        "authorization_encrypted_response_alg": "RSA-OAEP-256",
        "authorization_encrypted_response_enc": "A128CBC-HS256",
    },
}


def _rsa_encryption_jwks() -> dict[str, Any]:
    key = jwk.JWK.generate(kty="RSA", size=2048)
    public = json.loads(key.export_public())
    public.update({"kid": "rp-enc-1", "use": "enc", "alg": "RSA-OAEP-256"})
    return {"keys": [public]}


@pytest.fixture
def client_of(make_app: Callable[..., Any]) -> Callable[[str], Any]:
    keys.generate_server_key("ES256")
    keys.generate_server_key("PS256")

    def make(kind: str) -> Any:
        jarm = CLIENTS[kind]
        if jarm is not None and "authorization_encrypted_response_alg" in jarm:
            jarm = {**jarm, "jwks": _rsa_encryption_jwks()}
        return make_app("code", jarm=jarm)

    return make


def _send(browser: Any, app: Any, mode: str, *, view: str = "/o/authorize/") -> set[str]:
    """One code + PKCE request (as the ``authorize`` fixture sends it); the names it answers."""
    _, challenge = rp.pkce_pair()
    query = {
        "client_id": app.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid read",
        "state": "af0ifjsldkj",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": mode,
    }
    response = browser.get(f"{view}?{urlencode(query)}")
    assert response.status_code == 302, response.status_code
    return {name for name, _ in parse_qsl(urlsplit(response["Location"]).query)}


def _queries(send: Callable[[], set[str]]) -> tuple[int, set[str]]:
    for _ in range(WARMUP):
        send()
    with CaptureQueriesContext(connection) as captured:
        answer = send()
    return len(captured), answer


@pytest.mark.parametrize("kind", list(CLIENTS))
def test_jwt_mode_costs_at_most_one_query_more_than_query_mode(browser, client_of, kind):
    app = client_of(kind)
    plain, plain_answer = _queries(lambda: _send(browser, app, "query"))
    jarm, jarm_answer = _queries(lambda: _send(browser, app, "query.jwt"))
    assert plain_answer == {"code", "state"}
    assert jarm_answer == {"response"}
    assert jarm <= plain + 1, f"query.jwt made {jarm} queries, query {plain}"


@pytest.mark.parametrize("kind", list(CLIENTS))
def test_jwt_mode_costs_at_most_one_query_more_than_dots_own_view(browser, client_of, kind):
    app = client_of(kind)
    plain, plain_answer = _queries(lambda: _send(browser, app, "query", view="/dot/authorize/"))
    jarm, jarm_answer = _queries(lambda: _send(browser, app, "query.jwt"))
    assert plain_answer == {"code", "state"}
    assert jarm_answer == {"response"}
    assert jarm <= plain + 1, f"query.jwt made {jarm} queries, DOT's view {plain}"
    # With warm caches the JARM view in fact makes one query fewer: the client comes from
    # oauthlib's request, its settings from the per-process snapshot, and oauthlib's second
    # validation reuses the client its first one loaded (DOT's view loads it three times).
    assert jarm == plain - 1, f"query.jwt made {jarm} queries, DOT's view {plain}"


@pytest.mark.parametrize("kind", ["ES256", "PS256 + RSA-OAEP-256"])
def test_the_client_is_loaded_once_less_than_by_dots_view(browser, client_of, kind):
    app = client_of(kind)

    def client_loads(view: str, mode: str) -> int:
        for _ in range(WARMUP):
            _send(browser, app, mode, view=view)
        with CaptureQueriesContext(connection) as captured:
            _send(browser, app, mode, view=view)
        return sum(1 for query in captured if '"oauth2_provider_application"' in query["sql"].split(" WHERE ")[0])

    dot = client_loads("/dot/authorize/", "query")
    assert dot >= 2  # DOT 3.4: oauthlib's validation, the view's own lookup, oauthlib's second validation
    assert client_loads("/o/authorize/", "query") == dot - 1
    assert client_loads("/o/authorize/", "query.jwt") == dot - 1


@contextmanager
def _counting(*targets: tuple[Any, str]) -> Iterator[dict[str, mock.MagicMock]]:
    """Count calls to each ``(owner, attribute)`` while still running the real thing."""
    with ExitStack() as stack:
        counters = {}
        for owner, name in targets:
            counters[name] = stack.enter_context(mock.patch.object(owner, name, wraps=getattr(owner, name)))
        yield counters


@pytest.mark.parametrize("kind", list(CLIENTS))
def test_no_key_is_parsed_on_the_request_path_once_cached(browser, client_of, kind):
    app = client_of(kind)
    for _ in range(WARMUP):
        assert _send(browser, app, "query.jwt") == {"response"}
    with _counting((keys, "decrypt_private_key"), (jwk.JWK, "from_pem"), (jwk.JWK, "from_json")) as counters:
        for _ in range(REQUESTS):
            assert _send(browser, app, "query.jwt") == {"response"}
    assert {name: counter.call_count for name, counter in counters.items()} == {
        "decrypt_private_key": 0,
        "from_pem": 0,
        "from_json": 0,
    }


class BudgetExceeded(AssertionError):
    """A budget check failed (as opposed to a request answering something unexpected)."""


def test_client_encryption_key_is_not_imported_on_the_request_path_once_cached(browser, client_of):
    app = client_of("PS256 + RSA-OAEP-256")
    for _ in range(WARMUP):
        assert _send(browser, app, "query.jwt") == {"response"}
    imports = []
    import_key = jwk.JWK.import_key

    def counting_import_key(self: jwk.JWK, **members: Any) -> Any:
        imports.append(members.get("kty"))
        return import_key(self, **members)

    with mock.patch.object(jwk.JWK, "import_key", counting_import_key):
        for _ in range(REQUESTS):
            assert _send(browser, app, "query.jwt") == {"response"}
    if imports:
        raise BudgetExceeded(f"{len(imports)} JWK imports ({', '.join(map(str, imports))}) in {REQUESTS} requests")
