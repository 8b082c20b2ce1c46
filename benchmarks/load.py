"""Bounded load test: authorization requests against several gunicorn servers sharing PostgreSQL
and Redis, every JARM response verified independently (joserfc) by a client that re-fetches the
JWKS on an unknown kid. A key rotation happens half way through.

    JARM_TEST_DATABASE_URL=postgres://jarm:jarm@127.0.0.1:5432/jarm \\
    JARM_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \\
    python benchmarks/load.py [--requests 2000] [--concurrency 16] [--time-limit 300]

It creates (and drops first) the database ``jarm_load`` next to the one in the URL. Everything
listens on 127.0.0.1. Exits non-zero on any error or failed verification.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOAD_DATABASE = "jarm_load"


def recreate_database(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{LOAD_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{LOAD_DATABASE}"')
    # Persistent connections, as a production deployment would use.
    return parts._replace(path="/" + LOAD_DATABASE, query="conn_max_age=60").geturl()


def prepare(database_url: str, redis_url: str) -> str:
    """Migrate and create the user, the client and a PS256 key; returns the client_id."""
    os.environ["JARM_TEST_DATABASE_URL"] = database_url
    os.environ["JARM_TEST_REDIS_URL"] = redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from oauth2_provider.models import get_application_model

    from django_jarm.keys import generate_server_key
    from django_jarm.models import ClientSettings

    call_command("migrate", verbosity=0)
    cache.clear()
    user = get_user_model().objects.create_superuser("alice", "alice@example.com", "alice-password")
    generate_server_key("PS256")
    application_model = get_application_model()
    app = application_model.objects.create(
        name="load client",
        user=user,
        client_type=application_model.CLIENT_CONFIDENTIAL,
        authorization_grant_type=application_model.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://rp.example/cb",
        skip_authorization=True,
    )
    ClientSettings.objects.create(application=app, authorization_signed_response_alg="PS256")
    return str(app.client_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds; unfinished requests count as errors")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--no-rotation", action="store_true")
    args = parser.parse_args()

    database_url = os.environ.get("JARM_TEST_DATABASE_URL", "postgres://jarm:jarm@127.0.0.1:5432/jarm")
    redis_url = os.environ.get("JARM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    load_url = recreate_database(database_url)
    client_id = prepare(load_url, redis_url)

    import requests

    from django_jarm.models import ServerKey
    from tests import cluster

    with tempfile.TemporaryDirectory() as directory, cluster.oidc_key_file(Path(directory)) as key_file:
        servers = cluster.Cluster(
            database_url=load_url,
            cache_url=redis_url,
            oidc_key_file=key_file,
            servers=args.servers,
            workers=args.workers,
            log_dir=Path(directory),
        )
        with servers:
            sessions = []
            for url in servers.urls:
                session = requests.Session()
                adapter = requests.adapters.HTTPAdapter(pool_maxsize=args.concurrency)
                session.mount("http://", adapter)
                cluster.login(session, url, "alice", "alice-password")
                sessions.append(session)
            verifier = cluster.verifier(*servers.urls)
            rotated = threading.Event()

            def one(index: int) -> cluster.Outcome:
                if index == args.requests // 2 and not args.no_rotation:
                    active = ServerKey.objects.get(alg="PS256", status="active")
                    cluster.admin_action(sessions[0], servers.urls[0], "rotate_algorithms", [active.pk])
                    rotated.set()
                server = index % len(servers.urls)
                return cluster.authorize(
                    sessions[server], servers.urls[server], client_id, verifier, state=f"st-{index}"
                )

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                futures = [pool.submit(one, index) for index in range(args.requests)]
                done, not_done = wait(futures, timeout=args.time_limit)
                for future in not_done:
                    future.cancel()
            elapsed = time.perf_counter() - started
            logs = servers.logs()

    outcomes = [future.result() for future in done if not future.cancelled()]
    failures = [outcome for outcome in outcomes if not outcome.ok]
    latencies = [outcome.latency * 1000 for outcome in outcomes]
    print(
        f"servers: {args.servers} x {args.workers} gunicorn workers, PostgreSQL, Redis; concurrency {args.concurrency}"
    )
    print(f"requests: {len(outcomes)} completed of {args.requests} in {elapsed:.1f} s (limit {args.time_limit:.0f} s)")
    print(f"throughput: {len(outcomes) / elapsed:.1f} req/s")
    if latencies:
        p50, p90, p99 = (cluster.percentile(latencies, q) for q in (0.5, 0.9, 0.99))
        print(f"latency ms: p50 {p50:.0f}  p90 {p90:.0f}  p99 {p99:.0f}  max {max(latencies):.0f}")
    rotation = "yes" if rotated.is_set() else "no"
    print(f"key rotation mid-run: {rotation}; JWKS refreshes by the client: {verifier.refreshes}")
    print(f"errors: {len(failures) + len(not_done)} (failed {len(failures)}, unfinished {len(not_done)})")
    for outcome in failures[:5]:
        print(f"  status {outcome.status}: {outcome.detail}")
    if failures and "Traceback" in logs:
        print(logs[-2000:])
    return 1 if failures or not_done else 0


if __name__ == "__main__":
    sys.exit(main())
