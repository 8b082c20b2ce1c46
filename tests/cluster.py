"""Real server processes for multi-process, load and fault tests (and benchmarks/load.py).

Everything listens on 127.0.0.1 only. The servers run the test project (tests/wsgi.py) under
gunicorn, sharing one PostgreSQL database and one Redis, as a deployment behind a load balancer
would. A relying party written with joserfc and requests verifies every response.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from tests import rp

ROOT = Path(__file__).resolve().parent.parent
REDIRECT_URI = "https://rp.example/cb"
#: Pinned, as in production behind a load balancer: every server answers with the same issuer.
ISSUER = "https://login.example.test/o"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def service_urls() -> tuple[str, str] | None:
    """PostgreSQL and Redis URLs from the environment, or None when either is missing."""
    database = os.environ.get("JARM_TEST_DATABASE_URL", "")
    redis = os.environ.get("JARM_TEST_REDIS_URL", "")
    if database.startswith(("postgres://", "postgresql://")) and redis.startswith("redis://"):
        return database, redis
    return None


def with_database_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path="/" + name).geturl()


class Cluster:
    """``servers`` gunicorn servers (``workers`` sync workers each) sharing a database and a cache."""

    def __init__(
        self,
        *,
        database_url: str,
        cache_url: str,
        oidc_key_file: Path,
        servers: int = 2,
        workers: int = 1,
        jarm: dict[str, Any] | None = None,
        log_dir: Path,
    ) -> None:
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "JARM_TEST_DATABASE_URL": database_url,
            "JARM_TEST_REDIS_URL": cache_url,
            "JARM_TEST_OIDC_KEY_FILE": str(oidc_key_file),
            "JARM_TEST_SETTINGS": json.dumps({"ISSUER": ISSUER, **(jarm or {})}),
            "PYTHONPATH": str(ROOT),
        }
        self.count = servers
        self.workers = workers
        self.log_dir = log_dir
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> Cluster:
        gunicorn = shutil.which("gunicorn") or str(Path(sys.executable).with_name("gunicorn"))
        for index in range(self.count):
            port = free_port()
            log = (self.log_dir / f"server-{index}.log").open("wb")
            command = [
                gunicorn,
                "tests.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(self.workers),
                "--timeout",
                "30",
                "--graceful-timeout",
                "2",
                "--error-logfile",
                "-",
            ]
            self.processes.append(subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log))
            self.ports.append(port)
        for port in self.ports:
            wait_for_port(port)
        return self

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.log_dir.glob("server-*.log")))

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A private redis-server on a free port, which a fault test may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class TCPProxy:
    """Forwards 127.0.0.1:port to a target; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.open = True
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for sock in self.connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self.connections.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


# The relying party ---------------------------------------------------------------------


def verifier(*server_urls: str) -> rp.RefreshingVerifier:
    """The documented client: caches the JWK Set, fetches it again on an unknown kid.

    Each fetch asks the next server in turn, so a server that published a key late is caught.
    """
    turn = itertools.count()

    def fetch() -> dict[str, Any]:
        url = server_urls[next(turn) % len(server_urls)]
        return requests.get(f"{url}/o/.well-known/jwks.json", timeout=10).json()

    return rp.RefreshingVerifier(fetch, issuer=ISSUER)


def login(session: requests.Session, base_url: str, username: str, password: str) -> None:
    """Log in through the admin login form (the session works on every server: it lives in the database)."""
    page = session.get(f"{base_url}/admin/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    answer = session.post(
        f"{base_url}/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": token[1], "username": username, "password": password, "next": "/admin/"},
        headers={"Referer": f"{base_url}/admin/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.status_code


def admin_action(session: requests.Session, base_url: str, action: str, pks: list[int]) -> None:
    page = session.get(f"{base_url}/admin/django_jarm/serverkey/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.status_code
    answer = session.post(
        f"{base_url}/admin/django_jarm/serverkey/",
        data={"csrfmiddlewaretoken": token[1], "action": action, "_selected_action": [str(pk) for pk in pks]},
        headers={"Referer": f"{base_url}/admin/django_jarm/serverkey/"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.status_code


@dataclass
class Outcome:
    ok: bool
    latency: float
    status: int
    detail: str = ""
    claims: dict[str, Any] = field(default_factory=dict)
    #: The kid of the key that signed the response.
    kid: str = ""


def authorize(
    session: requests.Session,
    base_url: str,
    client_id: str,
    verifier: rp.RefreshingVerifier,
    *,
    mode: str = "jwt",
    state: str = "st-load",
) -> Outcome:
    """One code + PKCE authorization request; verifies the JARM response like a client must."""
    _, challenge = rp.pkce_pair()
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "read",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": mode,
    }
    started = time.perf_counter()
    try:
        answer = session.get(f"{base_url}/o/authorize/?{urlencode(query)}", allow_redirects=False, timeout=30)
    except requests.RequestException as exc:
        return Outcome(False, time.perf_counter() - started, 0, f"{type(exc).__name__}")
    latency = time.perf_counter() - started
    if answer.status_code not in (302, 303):
        return Outcome(False, latency, answer.status_code, answer.text[:200])
    location = answer.headers["Location"]
    params = dict(parse_qsl(urlsplit(location).query) + parse_qsl(urlsplit(location).fragment))
    if set(params) != {"response"}:
        return Outcome(False, latency, answer.status_code, f"parameters outside the JWT: {sorted(params)}")
    try:
        verified = verifier.verify(params["response"], client_id)
    except Exception as exc:  # any verification failure is an outcome to count, not a crash
        return Outcome(False, latency, answer.status_code, f"verification failed: {exc!r}")
    claims = verified.claims
    if claims.get("state") != state or "code" not in claims:
        return Outcome(False, latency, answer.status_code, f"unexpected claims {sorted(claims)}")
    return Outcome(True, latency, answer.status_code, claims=claims, kid=str(verified.header.get("kid")))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@contextlib.contextmanager
def oidc_key_file(directory: Path) -> Iterator[Path]:
    from tests.settings import _rsa_pem

    path = directory / "oidc.key"
    path.write_text(_rsa_pem())
    yield path
