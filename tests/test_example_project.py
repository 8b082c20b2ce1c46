"""The one-command demo (``python manage.py jarm_demo``) works on a fresh database.

Everything runs in subprocesses with the example project's settings, against a SQLite file and
an OIDC key file in a temporary directory: the test settings are never touched.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_ALGS = ("PS256", "ES256", "EdDSA")
DEMO_CLIENT_IDS = {
    "demo-code-jwt",
    "demo-form-post-jwt",
    "demo-fragment-jwt",
    "demo-hybrid-encrypted",
    "demo-dir-secret",
    "demo-require-jarm",
}

pytestmark = pytest.mark.skipif(
    not (REPO_ROOT / "manage.py").exists(), reason="the example project is not in this tree"
)


def demo_environment(directory: Path) -> dict[str, str]:
    """The environment of a ``manage.py`` process running the demo on its own files in ``directory``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "JARM_")) and name not in ("RUN_MAIN", "DATABASE_URL", "REDIS_URL")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "DJANGO_JARM_DEMO_DB": str(directory / "demo.sqlite3"),
            "DJANGO_JARM_DEMO_KEY_FILE": str(directory / "oidc.key"),
            # The relying party's key goes beside it by default; named here to be sure.
            "DJANGO_JARM_DEMO_RP_KEY_FILE": str(directory / "relying_party.key"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return demo_environment(tmp_path_factory.mktemp("jarm_demo"))


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(env, "manage.py", *args)


def row_counts(env: dict[str, str]) -> dict[str, int]:
    tables = (
        "auth_user",
        "django_jarm_serverkey",
        "oauth2_provider_application",
        "django_jarm_clientsettings",
    )
    with sqlite3.connect(env["DJANGO_JARM_DEMO_DB"]) as db:
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in tables}


@pytest.fixture(scope="module")
def first_run(demo_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return manage(demo_env, "jarm_demo", "--no-runserver")


def test_first_run_sets_everything_up(demo_env: dict[str, str], first_run: Any) -> None:
    assert "Demo ready: 10 object(s) created" in first_run.stdout
    assert row_counts(demo_env) == {
        "auth_user": 1,
        "django_jarm_serverkey": 3,
        "oauth2_provider_application": 6,
        "django_jarm_clientsettings": 6,
    }
    for name in ("DJANGO_JARM_DEMO_KEY_FILE", "DJANGO_JARM_DEMO_RP_KEY_FILE"):
        key_file = Path(demo_env[name])
        assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
        if os.name == "posix":
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with sqlite3.connect(demo_env["DJANGO_JARM_DEMO_DB"]) as db:
        user = db.execute("SELECT is_staff, is_superuser FROM auth_user WHERE username = 'demo'").fetchone()
        registered = dict(
            db.execute(
                "SELECT a.client_id, s.jwks FROM django_jarm_clientsettings s"
                " JOIN oauth2_provider_application a ON a.id = s.application_id"
            ).fetchall()
        )
    assert user == (1, 1)
    # The relying party's public key (never its private part) is registered for encryption.
    jwks = json.loads(registered["demo-hybrid-encrypted"])
    assert [key["alg"] for key in jwks["keys"]] == ["RSA-OAEP-256"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwks["keys"][0])


def test_second_run_creates_nothing(demo_env: dict[str, str], first_run: Any) -> None:
    before = row_counts(demo_env)
    key_before = Path(demo_env["DJANGO_JARM_DEMO_KEY_FILE"]).read_text()

    rp_key_before = Path(demo_env["DJANGO_JARM_DEMO_RP_KEY_FILE"]).read_text()

    second = manage(demo_env, "jarm_demo", "--no-runserver")

    assert "Demo ready: 0 object(s) created, 0 updated." in second.stdout
    assert row_counts(demo_env) == before
    assert Path(demo_env["DJANGO_JARM_DEMO_KEY_FILE"]).read_text() == key_before
    assert Path(demo_env["DJANGO_JARM_DEMO_RP_KEY_FILE"]).read_text() == rp_key_before


def test_a_changed_demo_user_is_repaired(demo_env: dict[str, str], first_run: Any) -> None:
    with sqlite3.connect(demo_env["DJANGO_JARM_DEMO_DB"]) as db:
        db.execute("UPDATE auth_user SET is_staff = 0, password = '!' WHERE username = 'demo'")

    again = manage(demo_env, "jarm_demo", "--no-runserver")

    assert "user 'demo': updated" in again.stdout
    with sqlite3.connect(demo_env["DJANGO_JARM_DEMO_DB"]) as db:
        assert db.execute("SELECT is_staff FROM auth_user WHERE username = 'demo'").fetchone() == (1,)


def test_check_passes_and_keys_are_active(demo_env: dict[str, str], first_run: Any) -> None:
    check = manage(demo_env, "check")
    assert "no issues" in check.stdout

    listed = manage(demo_env, "jarm_keys", "list").stdout
    for alg in DEMO_ALGS:
        assert re.search(rf"^{alg}\s+active\s+\S+", listed, re.MULTILINE), listed


#: Drives the demo with Django's test client under the example settings: log in, press every
#: button of the relying party's home page, consent (or deny), deliver the response to the
#: callback like a browser would (query, form_post, fragment relayed by the page's script), read
#: the result page; prints JSON. The relying party's HTTP requests to the authorization server
#: (discovery, JWK Set, token endpoint) go through a second, cookie-less test client.
BROWSE_SCRIPT = r"""
import html, json, re
import django
django.setup()
from django.test import Client
from oauth2_provider.models import get_application_model
from urllib.parse import urlsplit
from example_project.relying_party import transport

HOST = "127.0.0.1:8000"
server_side = Client(HTTP_HOST=HOST)
server_calls = []
registered_secrets = []

def send(method, url, headers, body):
    parts = urlsplit(url)
    assert parts.netloc == HOST, url
    server_calls.append(f"{method} {parts.path}")
    meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k.lower() != "content-type"}
    if method == "GET":
        answer = server_side.get(parts.path, **meta)
    else:
        answer = server_side.generic(method, parts.path, body, content_type=headers["Content-Type"], **meta)
    if parts.path == "/o/register/":
        registered_secrets.append(answer.json().get("client_secret", ""))
        registered_secrets.append(answer.json().get("registration_access_token", ""))
    return transport.HTTPResponse(answer.status_code, answer.get("Content-Type", ""), answer.content)

transport.send = send

def hidden_inputs(page):
    return {name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}

def attributes(page, name):
    return re.findall(name + r'="([^"]*)"', page)

browser = Client(HTTP_HOST=HOST)
out = {
    "discovery": browser.get("/o/.well-known/openid-configuration").json(),
    "anonymous_home": browser.get("/").status_code,
}
assert browser.login(username="demo", password="demo")
home = browser.get("/").content.decode()
out["home_lists_jwks"] = all(key["kid"] in home for key in browser.get("/o/.well-known/jwks.json").json()["keys"])
demo_app = get_application_model().objects.get(client_id="demo-hybrid-encrypted")
change_url = f"/admin/oauth2_provider/application/{demo_app.pk}/change/"
admin_urls = ("/admin/", "/admin/django_jarm/serverkey/", change_url)
out["admin"] = {url: browser.get(url).status_code for url in admin_urls}
change_page = browser.get(change_url).content.decode()
out["admin_inline"] = "JARM settings" in change_page and "RSA-OAEP-256" in change_page
out["header_admin_link"] = 'href="/admin/"' in home

def deliver(answer):
    # What the browser does with the authorization endpoint's answer; returns (kind, result URL).
    if answer.status_code == 200:
        fields = hidden_inputs(answer.content.decode())
        action = re.search(r'<form method="post" action="([^"]+)"', answer.content.decode()).group(1)
        return "form_post", sorted(fields), browser.post(urlsplit(html.unescape(action)).path, fields)
    location = answer["Location"]
    parts = urlsplit(location)
    if parts.fragment:
        page = browser.get(parts.path)  # the callback page with the script
        assert b"relying_party/fragment.js" in page.content and b'name="relayed_fragment"' in page.content
        names = sorted(dict(p.split("=", 1) for p in parts.fragment.split("&")))
        return "fragment", names, browser.post(parts.path, {"relayed_fragment": parts.fragment})
    names = sorted(dict(p.split("=", 1) for p in parts.query.split("&")))
    return "query", names, browser.get(f"{parts.path}?{parts.query}")

def result_of(callback):
    assert callback.status_code == 303, callback.status_code
    page = browser.get(callback["Location"]).content.decode()
    return {
        "verdict": attributes(page, "data-verdict"),
        "steps": attributes(page, "data-outcome"),
        "token_status": attributes(page, "data-token-status"),
        "error": attributes(page, "data-error"),
        "id_token": attributes(page, "data-id-token-outcome"),
        "full_secret_shown": "demo-dir-secret-derives" in page,
        "url": callback["Location"],
    }

out["flows"] = []
for start in re.findall(r'action="(/start/[^"]+)"', home):
    for deny in ((False, True) if start == "/start/demo-code-jwt/jwt/" else (False,)):
        authorize = browser.post(start)
        assert authorize.status_code == 303, authorize.status_code
        answer = browser.get(authorize["Location"])
        consent = answer.status_code == 200 and b"authorizationForm" in answer.content
        if consent:
            fields = hidden_inputs(answer.content.decode())
            if not deny:
                fields["allow"] = "Authorize"
            answer = browser.post(authorize["Location"], fields)
        kind, names, callback = deliver(answer)
        out["flows"].append({"start": start, "deny": deny, "consent": consent, "kind": kind, "params": names,
                             **result_of(callback)})

# The same response once more: the state is used up, so the relying party refuses it.
replay_start = browser.post("/start/demo-code-jwt/jwt/")
consent_fields = hidden_inputs(browser.get(replay_start["Location"]).content.decode())
replay_answer = browser.post(replay_start["Location"], {**consent_fields, "allow": "Authorize"})
first = browser.get(replay_answer["Location"])
out["replay"] = [result_of(first), result_of(browser.get(replay_answer["Location"]))]

# The dynamic registration card: register a new client, show the exchange, run a JARM flow with it.
registered = browser.post("/dynamic-registration/")
assert registered.status_code == 303, registered.status_code
registration_page = browser.get(registered["Location"]).content.decode()
def shown(block):
    return html.unescape(re.search(f"<pre data-registration-{block}>(.*?)</pre>", registration_page, re.S).group(1))

request_shown, answer_shown = shown("request"), shown("answer")
dynamic = {
    "status": attributes(registration_page, "data-registration-status"),
    "request": json.loads(request_shown),
    "answer": json.loads(answer_shown),
    "secrets_shown": [secret in registration_page for secret in registered_secrets],
    "home_card": 'action="/dynamic-registration/"' in home,
}
dynamic_start = re.findall(r'action="(/start/registered-[^"]+)"', registration_page)
dynamic["starts"] = dynamic_start
authorize = browser.post(dynamic_start[0])
answer = browser.get(authorize["Location"])
fields = hidden_inputs(answer.content.decode())
answer = browser.post(authorize["Location"], {**fields, "allow": "Authorize"})
kind, names, callback = deliver(answer)
dynamic["flow"] = {"kind": kind, "params": names, **result_of(callback)}
out["dynamic"] = dynamic
out["server_calls"] = sorted(set(server_calls))
unknown = browser.get("/result/no-such-result/")
out["unknown_result"] = [unknown.status_code, "The relying party cannot go on" in unknown.content.decode()]
from django.conf import settings
out["time_zone"] = settings.TIME_ZONE
print(json.dumps(out))
"""

STEPS_PASS = ["skip", "pass", "pass", "pass", "pass", "pass"]
EXPECTED_FLOWS = {
    # (start URL, denied): (delivery, decrypt step, token endpoint status, error)
    ("/start/demo-code-jwt/jwt/", False): ("query", "skip", "200", None),
    ("/start/demo-code-jwt/jwt/", True): ("query", "skip", None, "access_denied"),
    ("/start/demo-form-post-jwt/form-post-jwt/", False): ("form_post", "skip", "200", None),
    ("/start/demo-fragment-jwt/fragment-jwt/", False): ("fragment", "skip", "200", None),
    ("/start/demo-hybrid-encrypted/fragment-jwt/", False): ("fragment", "pass", "200", None),
    ("/start/demo-dir-secret/query-jwt/", False): ("query", "pass", "200", None),
    ("/start/demo-require-jarm/query-jwt/", False): ("query", "skip", "200", None),
    ("/start/demo-require-jarm/query/", False): ("query", "skip", None, "invalid_request"),
}


@pytest.fixture(scope="module")
def browsed(demo_env: dict[str, str], first_run: Any) -> dict[str, Any]:
    return json.loads(run(demo_env, "-c", BROWSE_SCRIPT).stdout)


def test_demo_pages(browsed: dict[str, Any]) -> None:
    assert browsed["anonymous_home"] == 200
    assert browsed["home_lists_jwks"]
    assert browsed["header_admin_link"]
    assert set(browsed["admin"].values()) == {200}, browsed["admin"]
    assert browsed["admin_inline"]
    discovery = browsed["discovery"]
    assert discovery["issuer"] == "http://127.0.0.1:8000/o"
    assert set(DEMO_ALGS) <= set(discovery["authorization_signing_alg_values_supported"])
    assert {"RSA-OAEP-256", "dir"} <= set(discovery["authorization_encryption_alg_values_supported"])
    # The relying party found everything through discovery, over "HTTP".
    assert browsed["server_calls"] == [
        "GET /o/.well-known/jwks.json",
        "GET /o/.well-known/openid-configuration",
        "POST /o/register/",
        "POST /o/token/",
    ]
    assert discovery["registration_endpoint"] == "http://127.0.0.1:8000/o/register/"


def test_a_dynamically_registered_client_runs_an_encrypted_jarm_flow(browsed: dict[str, Any]) -> None:
    dynamic = browsed["dynamic"]
    assert dynamic["home_card"]
    assert dynamic["status"] == ["201"]
    jarm = {
        "authorization_signed_response_alg": "PS256",
        "authorization_encrypted_response_alg": "RSA-OAEP-256",
        "authorization_encrypted_response_enc": "A256GCM",
    }
    assert dynamic["request"].items() >= jarm.items()
    assert dynamic["answer"].items() >= jarm.items()
    # The relying party's JWK Set: one RSA key, for encryption only, registered and answered as sent.
    assert [(key["kty"], key["use"]) for key in dynamic["request"]["jwks"]["keys"]] == [("RSA", "enc")]
    assert dynamic["answer"]["jwks"] == dynamic["request"]["jwks"]
    assert dynamic["request"]["redirect_uris"] == dynamic["answer"]["redirect_uris"]
    # Credentials are shown shortened only.
    assert dynamic["secrets_shown"] == [False, False]
    assert dynamic["answer"]["client_secret"].endswith("…")
    assert dynamic["starts"][0].endswith("/jwt/")
    flow = dynamic["flow"]
    assert (flow["kind"], flow["params"], flow["verdict"]) == ("query", ["response"], ["pass"])
    assert flow["steps"] == ["pass", "pass", "pass", "pass", "pass", "pass"]
    assert flow["token_status"] == ["200"]


def test_an_unknown_result_is_the_demo_own_404_page(browsed: dict[str, Any]) -> None:
    assert browsed["unknown_result"] == [404, True]


def test_the_admin_shows_utc_like_the_result_pages(browsed: dict[str, Any]) -> None:
    assert browsed["time_zone"] == "UTC"


def test_every_demo_flow_is_verified_by_the_relying_party(browsed: dict[str, Any]) -> None:
    flows = {(flow["start"], flow["deny"]): flow for flow in browsed["flows"]}
    assert set(flows) == set(EXPECTED_FLOWS)
    assert {start.split("/")[2] for start, _ in flows} == DEMO_CLIENT_IDS
    for key, (kind, decrypt, token_status, error) in EXPECTED_FLOWS.items():
        flow = flows[key]
        assert flow["kind"] == kind, flow
        # Nothing outside the JWT, whatever the mode.
        assert flow["params"] == ["response"], flow
        assert flow["verdict"] == ["pass"], flow
        assert flow["steps"] == [decrypt, *STEPS_PASS[1:]], flow
        assert flow["token_status"] == ([token_status] if token_status else []), flow
        assert flow["error"] == ([error] if error else []), flow
        assert not flow["full_secret_shown"]
        # require_jarm refuses the plain mode before the consent page, as a JWT.
        assert flow["consent"] == (key[0] != "/start/demo-require-jarm/query/"), flow
    # ID tokens: in the hybrid response and from the token endpoint, with the session's nonce.
    assert flows["/start/demo-hybrid-encrypted/fragment-jwt/", False]["id_token"] == ["pass", "pass"]
    assert flows["/start/demo-code-jwt/jwt/", False]["id_token"] == ["pass"]


def test_a_replayed_response_is_refused(browsed: dict[str, Any]) -> None:
    first, replay = browsed["replay"]
    assert first["verdict"] == ["pass"]
    assert first["token_status"] == ["200"]
    assert replay["verdict"] == ["fail"]
    # Signed, fresh, for this client: only the used-up state gives the replay away.
    assert replay["steps"] == ["skip", "pass", "pass", "pass", "pass", "fail"]
    assert replay["token_status"] == []


def test_each_log_line_appears_once(demo_env: dict[str, str]) -> None:
    # Django's console handler (DEBUG only) and the project's root handler would both print it.
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('django.request').warning('probe line'); "
        "logging.getLogger('django_jarm.views').warning('second probe')"
    )
    result = run(demo_env, "-c", script)
    assert result.stderr.count("probe line") == 1, result.stderr
    assert result.stderr.count("second probe") == 1, result.stderr
