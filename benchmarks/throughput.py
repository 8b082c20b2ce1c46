"""Server CPU time per authorization, plain versus JARM, on gunicorn and PostgreSQL.

    python benchmarks/throughput.py [--requests 200] [--rounds 5] [--workers 2]

One gunicorn server (sync workers) of the test project on PostgreSQL and Redis (the URLs of
``JARM_TEST_DATABASE_URL`` / ``JARM_TEST_REDIS_URL``, defaults on 127.0.0.1), a logged-in user
and three pre-approved code-flow clients (ES256, PS256, ES256 + RSA-OAEP-256). One connection
sends blocks of ``--requests`` code + PKCE authorization requests, the modes alternating block
after block for ``--rounds`` rounds: ``query``, then ``query.jwt`` for each client. Each block
is timed by the CPU time the server's workers used (``/proc``, Linux), so the client's own work
and other processes' load are left out; the figures are per request, medians over rounds, with
the throughput of the single connection for information. One response per block is verified
with joserfc, outside the timing. It creates (and drops first) the database
``jarm_throughput`` next to the one in the URL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE = "jarm_throughput"
REDIRECT_URI = "https://rp.example/cb"
CLIENTS = {"ES256": ("ES256", False), "PS256": ("PS256", False), "ES256 + RSA-OAEP-256": ("ES256", True)}


def recreate_database(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE}"')
    # Persistent connections, as a production deployment would use.
    return parts._replace(path="/" + DATABASE, query="conn_max_age=60").geturl()


def prepare(database_url: str, redis_url: str) -> tuple[dict[str, str], object]:
    """Migrate; create the user, ES256 and PS256 keys, the clients; returns their ids and the
    private key the encrypted client decrypts with (a joserfc key)."""
    os.environ["JARM_TEST_DATABASE_URL"] = database_url
    os.environ["JARM_TEST_REDIS_URL"] = redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from joserfc.jwk import RSAKey
    from oauth2_provider.models import get_application_model

    from django_jarm.keys import generate_server_key
    from django_jarm.models import ClientSettings

    call_command("migrate", verbosity=0)
    cache.clear()
    user = get_user_model().objects.create_superuser("alice", "alice@example.com", "alice-password")
    for alg in ("ES256", "PS256"):
        generate_server_key(alg)
    client_key = RSAKey.generate_key(2048, parameters={"kid": "rp-enc-1", "use": "enc"})
    application_model = get_application_model()
    client_ids = {}
    for name, (alg, encrypted) in CLIENTS.items():
        app = application_model.objects.create(
            name=name,
            user=user,
            client_type=application_model.CLIENT_CONFIDENTIAL,
            authorization_grant_type=application_model.GRANT_AUTHORIZATION_CODE,
            redirect_uris=REDIRECT_URI,
            skip_authorization=True,
        )
        jarm: dict[str, object] = {"authorization_signed_response_alg": alg}
        if encrypted:
            jarm.update(
                authorization_encrypted_response_alg="RSA-OAEP-256",
                jwks={"keys": [client_key.as_dict(private=False)]},
            )
        ClientSettings.objects.create(application=app, **jarm)
        client_ids[name] = str(app.client_id)
    return client_ids, client_key


def worker_cpu_seconds(master_pid: int) -> float:
    """User + system CPU time of the gunicorn master's children (its workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:  # field 4 of stat: the parent pid
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    return total / ticks


def authorize_url(base_url: str, client_id: str, mode: str) -> str:
    from tests import rp

    _, challenge = rp.pkce_pair()
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "read",
        "state": "st-throughput",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": mode,
    }
    return f"{base_url}/o/authorize/?{urlencode(query)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per block")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    args = parser.parse_args()

    database_url = os.environ.get("JARM_TEST_DATABASE_URL", "postgres://jarm:jarm@127.0.0.1:5432/jarm")
    redis_url = os.environ.get("JARM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client_ids, client_key = prepare(recreate_database(database_url), redis_url)

    import requests

    from tests import cluster, rp

    with tempfile.TemporaryDirectory() as directory, cluster.oidc_key_file(Path(directory)) as key_file:
        server = cluster.Cluster(
            database_url=os.environ["JARM_TEST_DATABASE_URL"],
            cache_url=redis_url,
            oidc_key_file=key_file,
            servers=1,
            workers=args.workers,
            log_dir=Path(directory),
        )
        with server:
            base_url = server.urls[0]
            master = server.processes[0].pid
            session = requests.Session()
            cluster.login(session, base_url, "alice", "alice-password")
            verifier = cluster.verifier(base_url)
            blocks = {"plain query": (client_ids["ES256"], "query")}
            blocks.update({f"query.jwt, {name}": (client_id, "query.jwt") for name, client_id in client_ids.items()})
            cpu: dict[str, list[float]] = {name: [] for name in blocks}
            wall: dict[str, list[float]] = {name: [] for name in blocks}

            def check(name: str, client_id: str, mode: str) -> None:
                answer = session.get(authorize_url(base_url, client_id, mode), allow_redirects=False, timeout=30)
                assert answer.status_code == 302, answer.status_code
                params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
                if mode == "query":
                    assert set(params) == {"code", "state"}, sorted(params)
                    return
                token = params["response"]
                if name.endswith("RSA-OAEP-256"):
                    _, token = rp.decrypt_response(token, client_key, alg="RSA-OAEP-256", enc="A128CBC-HS256")
                assert verifier.verify(token, client_id).params["state"] == "st-throughput"

            for name, (client_id, mode) in blocks.items():  # warm every worker
                for _ in range(20):
                    check(name, client_id, mode)
            for index in range(args.rounds):
                order = list(blocks)[index % len(blocks) :] + list(blocks)[: index % len(blocks)]
                for name in order:
                    client_id, mode = blocks[name]
                    urls = [authorize_url(base_url, client_id, mode) for _ in range(args.requests)]
                    started_cpu, started = worker_cpu_seconds(master), time.perf_counter()
                    for url in urls:
                        answer = session.get(url, allow_redirects=False, timeout=30)
                        assert answer.status_code == 302, answer.status_code
                    wall[name].append((time.perf_counter() - started) / args.requests)
                    cpu[name].append((worker_cpu_seconds(master) - started_cpu) / args.requests)
                    check(name, client_id, mode)

    median = statistics.median
    plain = cpu["plain query"]
    print(f"gunicorn, {args.workers} sync workers, PostgreSQL, Redis; one connection; {args.rounds} rounds of ")
    print(f"{args.requests} requests per mode; server CPU per request (median over rounds), and what JARM adds")
    for name in blocks:
        added = [a - b for a, b in zip(cpu[name], plain, strict=True)]
        extra = "" if name == "plain query" else f"   adds {median(added) * 1e3:5.2f} ms"
        print(f"  {name:<34} {median(cpu[name]) * 1e3:5.2f} ms CPU{extra}   {1 / median(wall[name]):6.1f} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
