"""The README's Installation section, run as written in a fresh ``django-admin startproject``.

The code blocks between ``<!-- installation-start`` and ``<!-- installation-end -->`` (the part
of the README that docs/installation.md includes too) are applied in a
temporary directory: the settings block appended to ``mysite/settings.py``, the URL block as
``mysite/urls.py``, each shell line run (``pip install .`` is what installed the package under
test; ``createsuperuser`` gets ``--noinput``), the Application block in ``manage.py shell``.
Then ``runserver`` serves the project and the example request goes through the admin login
and DOT's consent page over HTTP. The ``query.jwt`` response is verified with joserfc against
the JWK Set the server publishes, and its code is redeemed with the README's token request.
"""

from __future__ import annotations

import contextlib
import html.parser
import http.cookiejar
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

import django_jarm

README = Path(__file__).resolve().parent.parent / "README.md"
PASSWORD = "a-password-only-for-this-test"
README_ORIGIN = "http://127.0.0.1:8000"

pytestmark = pytest.mark.slow


def installation_blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block in the README's Installation section."""
    text = README.read_text()
    start = text.index("<!-- installation-start")
    section = text[start : text.index("<!-- installation-end -->", start)]
    return [(lang, code) for lang, code in re.findall(r"^```(\w*)\n(.*?)^```$", section, flags=re.M | re.S)]


def block(blocks: list[tuple[str, str]], lang: str, containing: str) -> str:
    found = [code for block_lang, code in blocks if block_lang == lang and containing in code]
    assert len(found) == 1, f"expected one {lang} block with {containing!r} in the Installation section"
    return found[0]


def shell_lines(code: str) -> list[str]:
    """The commands of a shell block, with backslash continuations joined."""
    return [line.strip() for line in code.replace("\\\n", " ").splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FormInputs(html.parser.HTMLParser):
    """The named inputs of the first ``<form method="post">`` on a page (and its submit buttons)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[tuple[str, str, str]] = []  # (type, name, value)
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and values.get("method", "").lower() == "post" and not self._done:
            self._in_form = True
        elif tag == "input" and self._in_form and values.get("name"):
            self.inputs.append((values.get("type", "text"), values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form, self._done = False, True


def form_of(page: str) -> FormInputs:
    parser = FormInputs()
    parser.feed(page)
    return parser


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Browser:
    """Cookies, no redirects followed, the CSRF token from the cookie."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect)

    def request(self, url: str, data: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(urllib.request.Request(url, data=body), timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:  # 3xx (not followed) and 4xx/5xx
            return error.code, dict(error.headers), error.read().decode()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The project built from the README, served by ``runserver``; yields what the tests need."""
    blocks = installation_blocks()
    directory = tmp_path_factory.mktemp("readme_install")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "JARM_")) and name not in ("RUN_MAIN", "DATABASE_URL", "REDIS_URL")
    }
    # The django_jarm under test (pytest imports it from the checkout, which an editable or wheel
    # install elsewhere must not shadow in the subprocesses).
    package_root = str(Path(django_jarm.__file__).resolve().parent.parent)
    env.update(
        {
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",  # runserver's check output is in its log once it listens
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")])),
        }
    )
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, *args], cwd=directory, env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    run("-m", "django", "startproject", "mysite", ".")
    settings_file, urls_file = directory / "mysite" / "settings.py", directory / "mysite" / "urls.py"
    with settings_file.open("a") as settings:
        settings.write("\n" + block(blocks, "python", "INSTALLED_APPS +="))
    urls_file.write_text(block(blocks, "python", "urlpatterns"))

    assert shell_lines(block(blocks, "sh", "pip install")) == ["pip install ."]  # how this package got here
    for line in shell_lines(block(blocks, "sh", "manage.py migrate")):
        args = shlex.split(line)
        assert args[:2] == ["python", "manage.py"], line
        if args[2] == "createsuperuser":
            args += ["--noinput", "--username", "admin", "--email", "admin@example.com"]
        outputs[args[2]] = run(*args[1:])
        if args[2] == "migrate":
            # Before any key exists, every manage.py command says that nothing can sign.
            outputs["check before generate"] = run("manage.py", "check")
    run("manage.py", "shell", "-c", block(blocks, "python", "Application.objects.create"))

    port = free_port()
    log = directory / "runserver.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=directory,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "runserver did not start:\n" + log.read_text()
            time.sleep(0.2)
        yield {
            "blocks": blocks,
            "origin": origin,
            "outputs": outputs,
            "log": log,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_commands_report_the_missing_key_then_nothing(project):
    outputs = project["outputs"]
    assert "django_jarm.W007" in outputs["check before generate"].stderr
    assert "No active server key for JARM['DEFAULT_SIGNING_ALG'] 'PS256'" in outputs["check before generate"].stderr
    generated = outputs["jarm_keys"]
    assert re.fullmatch(r"Generated PS256 key [A-Za-z0-9_-]{43} \(active\)\.\n", generated.stdout)
    assert generated.stderr == ""  # the README's JARM setting names the generated key's algorithm
    assert "System check identified no issues" in project["log"].read_text()


def test_the_example_request_gets_a_verified_query_jwt_response(project):
    origin: str = project["origin"]
    browser = Browser()

    # Log in at the admin, as the README says.
    status, _, page = browser.request(f"{origin}/admin/login/")
    assert status == 200
    login = {name: value for _, name, value in form_of(page).inputs}
    login.update(username="admin", password=PASSWORD, next="/admin/")
    status, headers, _ = browser.request(f"{origin}/admin/login/?next=/admin/", login)
    assert (status, headers["Location"]) == (302, "/admin/")

    # The README's authorization request, on this server's port.
    (url,) = [code.strip() for lang, code in project["blocks"] if lang == "text"]
    assert url.startswith(f"{README_ORIGIN}/o/authorize/?")
    url = url.replace(README_ORIGIN, origin, 1)
    status, _, page = browser.request(url)
    assert status == 200, page
    consent = form_of(page)
    fields = {name: value for kind, name, value in consent.inputs if kind == "hidden"}
    assert fields["response_mode"] == "query.jwt"
    assert ("submit", "allow", "Authorize") in consent.inputs
    status, headers, _ = browser.request(url, {**fields, "allow": "Authorize"})
    assert status == 302
    location = urllib.parse.urlsplit(headers["Location"])
    assert (location.scheme, location.netloc, location.path, location.fragment) == (
        "https",
        "client.example",
        "/callback",
        "",
    )
    query = urllib.parse.parse_qs(location.query)
    assert list(query) == ["response"]  # nothing in the clear
    (token,) = query["response"]

    # Verified independently, with the JWK Set and the issuer the server publishes.
    _, _, jwks = browser.request(f"{origin}/o/.well-known/jwks.json")
    _, _, metadata = browser.request(f"{origin}/o/.well-known/oauth-authorization-server")
    decoded = jwt.decode(token, KeySet.import_key_set(json.loads(jwks)), algorithms=["PS256"])
    claims = decoded.claims
    assert decoded.header["alg"] == "PS256"
    assert decoded.header["kid"] in {key["kid"] for key in json.loads(jwks)["keys"]}
    assert claims["iss"] == json.loads(metadata)["issuer"] == f"{origin}/o"
    assert claims["aud"] == "example-client"
    assert claims["state"] == "af0ifjsldkj"
    assert claims["exp"] - claims["iat"] == 120
    assert claims["exp"] > time.time()
    assert set(claims) == {"iss", "aud", "exp", "iat", "code", "state"}

    # The README's token request redeems the code.
    curl = shell_lines(block(project["blocks"], "sh", "curl"))
    (command,) = curl
    args = shlex.split(command)
    assert args[:4] == ["curl", "-X", "POST", f"{README_ORIGIN}/o/token/"]
    form = dict(value.split("=", 1) for flag, value in zip(args[4::2], args[5::2], strict=True) if flag == "-d")
    assert form.pop("code") == "THE_CODE_FROM_THE_JWT"
    status, _, body = Browser().request(f"{origin}/o/token/", {**form, "code": claims["code"]})
    assert status == 200, body
    assert json.loads(body)["token_type"] == "Bearer"


def test_openid_discovery_is_404_without_oidc(project):
    # The README's settings leave OIDC off: no OpenID Provider, no discovery document (not DOT's 500).
    status, _, _ = Browser().request(f"{project['origin']}/o/.well-known/openid-configuration")
    assert status == 404
    status, _, _ = Browser().request(f"{project['origin']}/o/.well-known/oauth-authorization-server")
    assert status == 200
