"""Several gunicorn server processes sharing PostgreSQL and Redis: rotation, load and faults.

These run when PostgreSQL and Redis are available (``JARM_TEST_DATABASE_URL`` and
``JARM_TEST_REDIS_URL``, as ``.ci/run`` sets them) and are skipped, saying so, otherwise.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from django.db import connection
from oauth2_provider.models import get_application_model

from django_jarm.keys import generate_server_key
from django_jarm.models import ClientSettings, ServerKey
from tests import cluster

URLS = cluster.service_urls()
pytestmark = [
    pytest.mark.skipif(
        URLS is None, reason="needs PostgreSQL and Redis: set JARM_TEST_DATABASE_URL and JARM_TEST_REDIS_URL"
    ),
    pytest.mark.django_db(transaction=True),
]
Application = get_application_model()
PASSWORD = "alice-password"


@pytest.fixture
def setup(django_user_model: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    assert URLS is not None
    user = django_user_model.objects.create_superuser("alice", "alice@example.com", PASSWORD)
    generate_server_key("PS256")
    app = Application.objects.create(
        name="load client",
        user=user,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=cluster.REDIRECT_URI,
        skip_authorization=True,
    )
    ClientSettings.objects.create(application=app, authorization_signed_response_alg="PS256")
    with cluster.oidc_key_file(tmp_path) as key_file:
        yield {
            "database_url": cluster.with_database_name(URLS[0], connection.settings_dict["NAME"]),
            "redis_url": URLS[1],
            "oidc_key_file": key_file,
            "client_id": app.client_id,
            "log_dir": tmp_path,
        }


def session_for(base_url: str) -> requests.Session:
    session = requests.Session()
    cluster.login(session, base_url, "alice", PASSWORD)
    return session


def published_within(url: str, kid: str, *, seconds: float) -> set[str]:
    """The kids a server publishes, polled until ``kid`` is among them or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        kids = {key["kid"] for key in requests.get(f"{url}/o/.well-known/jwks.json", timeout=10).json()["keys"]}
        if kid in kids or time.monotonic() > deadline:
            return kids
        time.sleep(0.1)


def run_round(session: requests.Session, servers: list[str], verifier: cluster.Verifier, client_id: str, n: int):
    return [cluster.authorize(session, servers[i % len(servers)], client_id, verifier) for i in range(n)]


def test_rotation_through_one_server_is_served_by_all(setup):
    with cluster.Cluster(
        database_url=setup["database_url"],
        redis_url=setup["redis_url"],
        oidc_key_file=setup["oidc_key_file"],
        servers=2,
        log_dir=setup["log_dir"],
    ) as servers:
        first, second = servers.urls
        session = session_for(first)
        verifier = cluster.Verifier(f"{first}/o/.well-known/jwks.json")
        outcomes = []
        for phase in range(3):
            outcomes += run_round(session, [first, second], verifier, setup["client_id"], 10)
            if phase < 2:
                active = ServerKey.objects.get(alg="PS256", status="active")
                cluster.admin_action(session, servers.urls[phase], "rotate_algorithms", [active.pk])
                new_active = ServerKey.objects.get(alg="PS256", status="active").kid
                # Documented: with a shared cache every process sees the change within a second.
                for url in servers.urls:
                    assert new_active in published_within(url, new_active, seconds=1.5), url
        failures = [outcome for outcome in outcomes if not outcome.ok]
        assert failures == [], servers.logs()[-3000:]
        assert verifier.refreshes == 1  # the first rotation's key was new; the second was published as "next"
        kids = [o.claims and o.claims.get("code") for o in outcomes]
        assert len(set(kids)) == 30


@pytest.mark.parametrize("requests_total", [200])
def test_bounded_load(setup, requests_total):
    """A small version of benchmarks/load.py: every response verified, zero errors."""
    with cluster.Cluster(
        database_url=setup["database_url"],
        redis_url=setup["redis_url"],
        oidc_key_file=setup["oidc_key_file"],
        servers=2,
        workers=2,
        log_dir=setup["log_dir"],
    ) as servers:
        sessions = [session_for(url) for url in servers.urls]
        verifiers = [cluster.Verifier(f"{url}/o/.well-known/jwks.json") for url in servers.urls]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(
                pool.map(
                    lambda i: cluster.authorize(
                        sessions[i % 2], servers.urls[i % 2], setup["client_id"], verifiers[i % 2], state=f"st-{i}"
                    ),
                    range(requests_total),
                    timeout=120,
                )
            )
        elapsed = time.perf_counter() - started
    failures = [outcome for outcome in outcomes if not outcome.ok]
    assert failures == []
    latencies = [outcome.latency for outcome in outcomes]
    print(
        f"\n{requests_total} requests in {elapsed:.1f}s: {requests_total / elapsed:.0f} req/s, "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {cluster.percentile(latencies, 0.99) * 1000:.0f} ms"
    )


def test_redis_stopped_mid_run(setup):
    redis = cluster.RedisServer()
    redis.start()
    try:
        with cluster.Cluster(
            database_url=setup["database_url"],
            redis_url=redis.url,
            oidc_key_file=setup["oidc_key_file"],
            servers=2,
            jarm={"KEY_CACHE_SECONDS": 1},
            log_dir=setup["log_dir"],
        ) as servers:
            session = session_for(servers.urls[0])
            verifier = cluster.Verifier(f"{servers.urls[0]}/o/.well-known/jwks.json")
            before = run_round(session, servers.urls, verifier, setup["client_id"], 6)
            redis.stop()
            during = run_round(session, servers.urls, verifier, setup["client_id"], 6)
            redis.start()
            after = run_round(session, servers.urls, verifier, setup["client_id"], 6)
    finally:
        redis.stop()
    assert [o for o in before + during + after if not o.ok] == []


class _HangingJWKS(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/garbage":
            body = b"\x00\xff not json"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        time.sleep(20)  # hang far past the client timeout

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("path", ["/hang", "/garbage"])
def test_bad_client_jwks_uri_costs_only_that_client(setup, path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HangingJWKS)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    broken = Application.objects.create(
        name="broken keys",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=cluster.REDIRECT_URI,
        skip_authorization=True,
    )
    ClientSettings.objects.create(
        application=broken,
        authorization_encrypted_response_alg="RSA-OAEP-256",
        jwks_uri=f"http://127.0.0.1:{server.server_address[1]}{path}",
    )
    jarm = {"CLIENT_JWKS_TIMEOUT": 1, "CLIENT_JWKS_ALLOW_HTTP": True, "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": True}
    try:
        with cluster.Cluster(
            database_url=setup["database_url"],
            redis_url=setup["redis_url"],
            oidc_key_file=setup["oidc_key_file"],
            servers=1,
            workers=2,
            jarm=jarm,
            log_dir=setup["log_dir"],
        ) as servers:
            (url,) = servers.urls
            session = session_for(url)
            verifier = cluster.Verifier(f"{url}/o/.well-known/jwks.json")

            def broken_request() -> tuple[float, dict[str, str]]:
                started = time.perf_counter()
                _, challenge = cluster.rp.pkce_pair()
                query = {
                    "client_id": broken.client_id,
                    "response_type": "code",
                    "redirect_uri": cluster.REDIRECT_URI,
                    "state": "st-broken",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "response_mode": "jwt",
                }
                answer = session.get(f"{url}/o/authorize/?{urlencode(query)}", allow_redirects=False, timeout=30)
                location = answer.headers.get("Location", "")
                return time.perf_counter() - started, dict(parse_qsl(urlsplit(location).query))

            with ThreadPoolExecutor(max_workers=2) as pool:
                pending = pool.submit(broken_request)
                healthy = run_round(session, [url], verifier, setup["client_id"], 5)
                elapsed, params = pending.result(timeout=30)
            again, params_again = broken_request()
    finally:
        server.shutdown()
        server.server_close()
    assert [o for o in healthy if not o.ok] == []
    assert params["error"] == "server_error"
    assert "code" not in params
    assert elapsed < 4  # connect/read timeout of 1 s, a deadline of twice that: no worker held longer
    assert params_again["error"] == "server_error"
    assert again < 1  # the failure is remembered: the next request does not wait again


def test_database_briefly_unavailable(setup):
    parts = urlsplit(setup["database_url"])
    proxy = cluster.TCPProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    database_url = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}").geturl()
    try:
        with cluster.Cluster(
            database_url=database_url,
            redis_url=setup["redis_url"],
            oidc_key_file=setup["oidc_key_file"],
            servers=1,
            workers=1,
            log_dir=setup["log_dir"],
        ) as servers:
            (url,) = servers.urls
            session = session_for(url)
            verifier = cluster.Verifier(f"{url}/o/.well-known/jwks.json")
            before = run_round(session, [url], verifier, setup["client_id"], 3)
            proxy.cut()
            down = [session.get(f"{url}/o/authorize/?client_id=x", allow_redirects=False, timeout=30) for _ in range(3)]
            proxy.restore()
            after = run_round(session, [url], verifier, setup["client_id"], 3)
    finally:
        proxy.close()
    assert [o for o in before + after if not o.ok] == []
    for answer in down:
        assert answer.status_code >= 500  # a clean server error page, never a redirect
        assert "Location" not in answer.headers
        assert "Traceback" not in answer.text
