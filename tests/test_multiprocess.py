"""Several gunicorn server processes sharing PostgreSQL: the consistency guarantees (DESIGN 6),
load and faults, with every cache backend.

These run when PostgreSQL and Redis are available (``JARM_TEST_DATABASE_URL`` and
``JARM_TEST_REDIS_URL``, as ``.ci/run`` sets them) and are skipped, saying so, otherwise. Every
response is verified by :func:`tests.cluster.verifier`, a client that caches the JWK Set and
fetches it again (from the next server in turn) on an unknown kid.
"""

from __future__ import annotations

import datetime
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from oauth2_provider.models import get_application_model

from django_jarm.exceptions import LifecycleConflict
from django_jarm.keys import activate_server_key, generate_server_key, rotate_server_keys
from django_jarm.models import ClientSettings, ServerKey
from tests import cluster, rp

URLS = cluster.service_urls()
pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.publication_wait,
    pytest.mark.skipif(
        URLS is None, reason="needs PostgreSQL and Redis: set JARM_TEST_DATABASE_URL and JARM_TEST_REDIS_URL"
    ),
    pytest.mark.django_db(transaction=True),
]
Application = get_application_model()
PASSWORD = "alice-password"
#: The consistency bound the servers run with (the default of STATE_REFRESH_SECONDS).
BOUND = 1.0
#: Short waits so that rotations fit in a test: activation after M + R = 3 s, retirement after
#: R + L + M = 13 s.
FAST_ROTATION = {"JWKS_MAX_AGE": 2, "RESPONSE_LIFETIME": 10}
CACHE_BACKENDS = ["locmem", "redis", "redis-stopped", "dummy"]


@pytest.fixture
def setup(django_user_model: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    assert URLS is not None
    user = django_user_model.objects.create_superuser("alice", "alice@example.com", PASSWORD)
    key = generate_server_key("PS256")
    ServerKey.objects.filter(pk=key.pk).update(created=timezone.now() - datetime.timedelta(hours=2))
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
            "application": app,
            "log_dir": tmp_path,
        }


@contextmanager
def servers_with_cache(setup: dict[str, Any], backend: str, **options: Any) -> Iterator[cluster.Cluster]:
    """Servers sharing the database, with Django's cache ``backend``; "redis-stopped" stops Redis once they run."""
    redis = cluster.RedisServer() if backend == "redis-stopped" else None
    cache_url = {"locmem": "locmem://", "dummy": "dummy://", "redis": setup["redis_url"]}.get(backend, "")
    if redis is not None:
        redis.start()
        cache_url = redis.url
    try:
        with cluster.Cluster(
            database_url=setup["database_url"],
            cache_url=cache_url,
            oidc_key_file=setup["oidc_key_file"],
            log_dir=setup["log_dir"],
            **options,
        ) as servers:
            if redis is not None:
                redis.stop()
            yield servers
    finally:
        if redis is not None:
            redis.stop()


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


def run_round(session: requests.Session, servers: list[str], verifier: rp.RefreshingVerifier, client_id: str, n: int):
    return [cluster.authorize(session, servers[i % len(servers)], client_id, verifier) for i in range(n)]


def plain_query_answer(session: requests.Session, url: str, client_id: str) -> dict[str, str]:
    """A plain response_mode=query request: the parameters that reached the redirect URI."""
    _, challenge = rp.pkce_pair()
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": cluster.REDIRECT_URI,
        "state": "st-plain",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": "query",
    }
    answer = session.get(f"{url}/o/authorize/?{urlencode(query)}", allow_redirects=False, timeout=30)
    assert answer.status_code in (302, 303), answer.status_code
    return dict(parse_qsl(urlsplit(answer.headers["Location"]).query))


# Guarantee 1: a committed change applies everywhere within the bound -----------------------------


@pytest.mark.parametrize("backend", CACHE_BACKENDS)
def test_client_settings_change_applies_everywhere_within_the_bound(setup, backend):
    """require_jarm switched on in one place: within the bound, no server answers a plain mode in the clear."""
    with servers_with_cache(setup, backend, servers=2, workers=2) as servers:
        sessions = [session_for(url) for url in servers.urls]
        for session, url in zip(sessions, servers.urls, strict=True):
            for _ in range(4):  # every worker has a snapshot with require_jarm off
                assert "code" in plain_query_answer(session, url, setup["client_id"])
        settings = ClientSettings.objects.get(application=setup["application"])
        settings.require_jarm = True
        settings.save()  # committed: the version row moved with it
        changed = time.monotonic()
        answers: list[tuple[float, bool]] = []  # (sent this long after the change, answered in the clear)
        # Until every server has been asked a few times after the bound (requests are slow on a busy machine).
        while sum(sent > BOUND for sent, _ in answers) < 8 and time.monotonic() - changed < 30:
            for session, url in zip(sessions, servers.urls, strict=True):
                sent = time.monotonic() - changed
                answers.append((sent, "code" in plain_query_answer(session, url, setup["client_id"])))
    late_clear = [sent for sent, clear in answers if clear and sent > BOUND]
    assert late_clear == [], f"answered in the clear {late_clear} s after the change (bound {BOUND} s)"
    refused_after = [clear for sent, clear in answers if sent > BOUND]
    assert len(refused_after) >= 8  # every server was asked, several times, after the bound
    print(f"\nlast answer in the clear {max((s for s, c in answers if c), default=0):.2f} s after the change")


# Guarantees 2 and 3: publish before sign, keep after sign, under load ----------------------------


@pytest.mark.parametrize("backend", ["redis", "locmem"])
def test_rotations_under_load_never_fail_a_verifier(setup, backend, settings):
    """First rotation, back-to-back rotations and activate during 1,000+ verified responses."""
    settings.JARM = FAST_ROTATION  # this process rotates: it waits as the servers do
    target = 1000
    with servers_with_cache(setup, backend, servers=2, workers=2, jarm=FAST_ROTATION) as servers:
        sessions = [session_for(url) for url in servers.urls]
        verifier = cluster.verifier(*servers.urls)
        outcomes: list[cluster.Outcome] = []
        stop = threading.Event()
        lock = threading.Lock()

        def client(index: int) -> None:
            count = 0
            while not stop.is_set():
                url = servers.urls[(index + count) % 2]
                outcome = cluster.authorize(
                    sessions[index % 2], url, setup["client_id"], verifier, state=f"st-{index}-{count}"
                )
                with lock:
                    outcomes.append(outcome)
                count += 1

        steps: list[str] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            for index in range(8):
                pool.submit(client, index)
            try:
                time.sleep(1)
                first = rotate_server_keys("PS256")  # no next key yet: prepares one, activates nothing
                steps.append(f"first rotation activated {first.activated}")
                assert first.activated is None
                assert rotate_server_keys("PS256").activated is None  # back to back: still too young
                time.sleep(3.2)  # M + R after the next key was stored
                second = rotate_server_keys("PS256")
                steps.append(f"second rotation activated {second.activated}")
                assert second.activated == first.next
                third = rotate_server_keys("PS256")  # back to back: kept, nothing activated
                assert third.activated is None
                assert [kid for kid, _ in third.kept] == [second.retiring]
                fresh = generate_server_key("PS256")
                with pytest.raises(LifecycleConflict):
                    activate_server_key(fresh.kid)  # published for 0 s
                time.sleep(3.2)
                activate_server_key(fresh.kid)
                steps.append(f"activated {fresh.kid}")
                while len(outcomes) < target:
                    time.sleep(0.5)
                time.sleep(10)  # past R + L + M for the first retiring key
                call_command("jarm_keys", "rotate", "--alg", "PS256")
            finally:
                stop.set()
        logs = servers.logs()
    failures = [outcome for outcome in outcomes if not outcome.ok]
    assert len(outcomes) >= target
    assert failures == [], (failures[:5], steps, logs[-2000:])
    signing_kids = {outcome.kid for outcome in outcomes}
    assert len(signing_kids) >= 3, signing_kids  # the first key, the rotated-in key, the activated one
    assert ServerKey.objects.filter(alg="PS256", status="retired").count() >= 1


def test_rotation_through_one_server_is_served_by_all(setup, settings):
    settings.JARM = FAST_ROTATION
    with servers_with_cache(setup, "redis", servers=2, jarm=FAST_ROTATION) as servers:
        first, second = servers.urls
        session = session_for(first)
        verifier = cluster.verifier(first, second)
        outcomes = run_round(session, [first, second], verifier, setup["client_id"], 10)
        active = ServerKey.objects.get(alg="PS256", status="active")
        cluster.admin_action(session, first, "rotate_algorithms", [active.pk])  # prepares the next key
        upcoming = ServerKey.objects.get(alg="PS256", status="next").kid
        for url in servers.urls:
            assert upcoming in published_within(url, upcoming, seconds=BOUND + 0.5), url
        outcomes += run_round(session, [first, second], verifier, setup["client_id"], 10)
        time.sleep(3.2)
        cluster.admin_action(session_for(second), second, "rotate_algorithms", [active.pk])
        assert ServerKey.objects.get(alg="PS256", status="active").kid == upcoming
        outcomes += run_round(session, [first, second], verifier, setup["client_id"], 10)
    assert [o for o in outcomes if not o.ok] == []
    assert len({o.claims.get("code") for o in outcomes}) == 30


@pytest.mark.parametrize("requests_total", [200])
def test_bounded_load(setup, requests_total):
    """A small version of benchmarks/load.py: every response verified, zero errors."""
    with servers_with_cache(setup, "redis", servers=2, workers=2) as servers:
        sessions = [session_for(url) for url in servers.urls]
        verifiers = [cluster.verifier(url) for url in servers.urls]
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
            cache_url=redis.url,
            oidc_key_file=setup["oidc_key_file"],
            servers=2,
            log_dir=setup["log_dir"],
        ) as servers:
            session = session_for(servers.urls[0])
            verifier = cluster.verifier(*servers.urls)
            before = run_round(session, servers.urls, verifier, setup["client_id"], 6)
            redis.stop()
            during = run_round(session, servers.urls, verifier, setup["client_id"], 6)
            redis.start()
            after = run_round(session, servers.urls, verifier, setup["client_id"], 6)
    finally:
        redis.stop()
    assert [o for o in before + during + after if not o.ok] == []


class _HangingJWKS(BaseHTTPRequestHandler):
    fetches: list[str] = []  # one entry per request received (list.append is atomic)

    def do_GET(self) -> None:
        self.fetches.append(self.path)
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
    _HangingJWKS.fetches = []
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
            cache_url=setup["redis_url"],
            oidc_key_file=setup["oidc_key_file"],
            servers=1,
            workers=2,
            jarm=jarm,
            log_dir=setup["log_dir"],
        ) as servers:
            (url,) = servers.urls
            session = session_for(url)
            verifier = cluster.verifier(url)

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
            repeats = [broken_request() for _ in range(6)]
    finally:
        server.shutdown()
        server.server_close()
    assert [o for o in healthy if not o.ok] == []
    assert params["error"] == "server_error"
    assert "code" not in params
    assert elapsed < 4  # connect/read timeout of 1 s, a deadline of twice that: no worker held longer
    assert [p.get("error") for _, p in repeats] == ["server_error"] * 6
    assert [p for _, p in repeats if "code" in p] == []
    assert max(t for t, _ in repeats) < 4
    # The failure is remembered per process: 7 requests over 2 workers reach the bad server at most
    # once per worker, however the load balancer spreads them.
    assert 1 <= len(_HangingJWKS.fetches) <= 2, _HangingJWKS.fetches


def test_database_briefly_unavailable(setup):
    parts = urlsplit(setup["database_url"])
    proxy = cluster.TCPProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    database_url = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}").geturl()
    try:
        with cluster.Cluster(
            database_url=database_url,
            cache_url=setup["redis_url"],
            oidc_key_file=setup["oidc_key_file"],
            servers=1,
            workers=1,
            log_dir=setup["log_dir"],
        ) as servers:
            (url,) = servers.urls
            session = session_for(url)
            verifier = cluster.verifier(url)
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
