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

from tests import rp

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_ALGS = ("PS256", "ES256", "EdDSA")
DEMO_CLIENT_IDS = {
    "demo-code-jwt",
    "demo-form-post-jwt",
    "demo-fragment-jwt",
    "demo-hybrid",
    "demo-require-jarm",
}

pytestmark = pytest.mark.skipif(
    not (REPO_ROOT / "manage.py").exists(), reason="the example project is not in this tree"
)


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("jarm_demo")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "JARM_")) and name != "RUN_MAIN"
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "DJANGO_JARM_DEMO_DB": str(directory / "demo.sqlite3"),
            "DJANGO_JARM_DEMO_KEY_FILE": str(directory / "oidc.key"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


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
    assert "Demo ready: 9 object(s) created" in first_run.stdout
    assert row_counts(demo_env) == {
        "auth_user": 1,
        "django_jarm_serverkey": 3,
        "oauth2_provider_application": 5,
        "django_jarm_clientsettings": 5,
    }
    key_file = Path(demo_env["DJANGO_JARM_DEMO_KEY_FILE"])
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_second_run_creates_nothing(demo_env: dict[str, str], first_run: Any) -> None:
    before = row_counts(demo_env)
    key_before = Path(demo_env["DJANGO_JARM_DEMO_KEY_FILE"]).read_text()

    second = manage(demo_env, "jarm_demo", "--no-runserver")

    assert "Demo ready: 0 object(s) created, 0 updated." in second.stdout
    assert row_counts(demo_env) == before
    assert Path(demo_env["DJANGO_JARM_DEMO_KEY_FILE"]).read_text() == key_before


def test_check_passes_and_keys_are_active(demo_env: dict[str, str], first_run: Any) -> None:
    check = manage(demo_env, "check")
    assert "no issues" in check.stdout

    listed = manage(demo_env, "jarm_keys", "list").stdout
    for alg in DEMO_ALGS:
        assert re.search(rf"^{alg}\s+active\s+\S+", listed, re.MULTILINE), listed


#: Drives the demo with Django's test client under the example settings: log in, follow every
#: link on the home page, consent, deliver the response to the callback page; prints JSON.
BROWSE_SCRIPT = r"""
import base64, html, json, re
import django
django.setup()
from django.test import Client
from oauth2_provider.models import get_application_model
from urllib.parse import parse_qs, urlsplit

Application = get_application_model()

def hidden_inputs(page):
    return {name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}

browser = Client(HTTP_HOST="127.0.0.1:8000")
out = {
    "discovery": browser.get("/o/.well-known/openid-configuration").json(),
    "jwks": browser.get("/o/.well-known/jwks.json").json(),
    "anonymous_home": browser.get("/").status_code,
}
assert browser.login(username="demo", password="demo")
home = browser.get("/").content.decode()
demo_app = Application.objects.get(client_id="demo-code-jwt")
change_url = f"/admin/oauth2_provider/application/{demo_app.pk}/change/"
admin_urls = ("/admin/", "/admin/django_jarm/serverkey/", change_url)
out["admin"] = {url: browser.get(url).status_code for url in admin_urls}
out["admin_inline"] = "JARM settings" in browser.get(change_url).content.decode()
out["deliveries"] = []
for link in re.findall(r'href="(/o/authorize/\?[^"]+)"', home):
    link = html.unescape(link)
    query = parse_qs(urlsplit(link).query)
    answer = browser.get(link)
    consent = answer.status_code == 200 and b"authorizationForm" in answer.content
    if consent:
        answer = browser.post(link, {**hidden_inputs(answer.content.decode()), "allow": "Authorize"})
    delivery = {"client_id": query["client_id"][0], "response_mode": query["response_mode"][0],
                "consent": consent, "status": answer.status_code}
    if answer.status_code == 200:
        fields = hidden_inputs(answer.content.decode())
        delivery.update(kind="form_post", params=sorted(fields))
        callback = browser.post("/callback/", fields)
        token = fields.get("response")
    else:
        location = answer["Location"]
        parts = urlsplit(location)
        params = parse_qs(parts.fragment or parts.query)
        delivery.update(kind="fragment" if parts.fragment else "query", params=sorted(params))
        callback = browser.get(location.split("#")[0])
        token = params.get("response", [None])[0]
    delivery["jwt"] = token
    delivery["callback_status"] = callback.status_code
    page = callback.content.decode()
    delivery["callback_decoded"] = "&quot;aud&quot;: &quot;%s&quot;" % delivery["client_id"] in page
    delivery["callback_curl"] = "--data-urlencode" in page and "code_verifier=" in page
    delivery["callback_script"] = 'id="fragment"' in page and "location.hash" in page
    if delivery["client_id"] == "demo-code-jwt":
        # Redeem the code as the curl command would, with the verifier the home page showed.
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        pending = browser.session["jarm_demo_pending"][claims["state"]]
        tokens = browser.post("/o/token/", {
            "grant_type": "authorization_code", "code": claims["code"], "client_id": "demo-code-jwt",
            "client_secret": "demo-code-jwt-secret", "redirect_uri": pending["redirect_uri"],
            "code_verifier": pending["verifier"],
        })
        delivery["token_status"] = tokens.status_code
        delivery["token_fields"] = sorted(tokens.json())
    out["deliveries"].append(delivery)
print(json.dumps(out))
"""


def test_demo_pages_and_flows(demo_env: dict[str, str], first_run: Any) -> None:
    out = json.loads(run(demo_env, "-c", BROWSE_SCRIPT).stdout)

    assert out["anonymous_home"] == 200
    assert set(out["admin"].values()) == {200}, out["admin"]
    assert out["admin_inline"]
    discovery = out["discovery"]
    assert discovery["issuer"] == "http://127.0.0.1:8000/o"
    assert set(DEMO_ALGS) <= set(discovery["authorization_signing_alg_values_supported"])
    assert "form_post.jwt" in discovery["response_modes_supported"]
    published = {key["alg"] for key in out["jwks"]["keys"]}
    assert {"RS256", *DEMO_ALGS} <= published

    deliveries = {(d["client_id"], d["response_mode"]): d for d in out["deliveries"]}
    assert {client_id for client_id, _ in deliveries} == DEMO_CLIENT_IDS
    expected = {
        ("demo-code-jwt", "jwt"): ("query", "PS256"),
        ("demo-form-post-jwt", "form_post.jwt"): ("form_post", "ES256"),
        ("demo-fragment-jwt", "fragment.jwt"): ("fragment", "EdDSA"),
        ("demo-hybrid", "jwt"): ("fragment", "RS256"),
        ("demo-require-jarm", "query.jwt"): ("query", "PS256"),
        ("demo-require-jarm", "query"): ("query", "PS256"),
    }
    assert set(deliveries) == set(expected)
    verified_by: dict[tuple[str, str], rp.VerifiedResponse] = {}
    for (client_id, mode), (kind, alg) in expected.items():
        delivery = deliveries[client_id, mode]
        assert delivery["kind"] == kind, delivery
        assert delivery["params"] == ["response"], delivery
        assert delivery["callback_status"] == 200
        verified = rp.verify_response(
            delivery["jwt"], jwks=out["jwks"], issuer=discovery["issuer"], client_id=client_id
        )
        assert verified.header["alg"] == alg
        verified_by[client_id, mode] = verified
        if mode == "query":
            # require_jarm: the plain mode is refused before consent, and the refusal is a JWT too.
            assert not delivery["consent"]
            assert verified.claims["error"] == "invalid_request"
        else:
            assert delivery["consent"]
            assert "code" in verified.claims
            assert "state" in verified.claims
        if kind == "fragment":
            assert delivery["callback_script"]
        else:
            assert delivery["callback_decoded"]
            assert delivery["callback_curl"] == (mode != "query")
    assert "id_token" in verified_by["demo-hybrid", "jwt"].claims
    code_flow = deliveries["demo-code-jwt", "jwt"]
    assert code_flow["token_status"] == 200
    assert {"access_token", "id_token", "refresh_token"} <= set(code_flow["token_fields"])
