"""The demo in a real browser: the system's Chromium, driven by Playwright, against the example
project started the way a person starts it (``manage.py jarm_demo``), on a free port, with its
database and keys in a temporary directory.

Every demo flow runs to the relying party's result page, whose every check must have passed:
query delivery, the ``form_post.jwt`` page submitting itself, the ``fragment.jwt`` callback page
whose script posts the fragment, encrypted responses, the deny button, the admin pages.

Screenshots for the README go to ``docs/screenshots/`` when a file there is missing, or always
with ``JARM_UPDATE_SCREENSHOTS=1``; otherwise to a temporary directory (so that a test run does
not change files under version control).

Only when no Chromium is installed are the tests skipped (``apt-get install chromium``).
Playwright never downloads a browser here: it launches the system's.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

from tests.test_example_project import demo_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"


def find_chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM = find_chromium()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium found (neither `chromium` on PATH nor /usr/bin/chromium): apt-get install chromium",
    ),
]

DONE = ["pass"] * 6
NOT_ENCRYPTED = ["skip", *DONE[1:]]
#: data-flow of each start button: (how the response arrives, step outcomes, token endpoint status).
FLOWS = {
    "demo-code-jwt/jwt": ("query", NOT_ENCRYPTED, "200"),
    "demo-form-post-jwt/form-post-jwt": ("form_post", NOT_ENCRYPTED, "200"),
    "demo-fragment-jwt/fragment-jwt": ("fragment", NOT_ENCRYPTED, "200"),
    "demo-hybrid-encrypted/fragment-jwt": ("fragment", DONE, "200"),
    "demo-dir-secret/query-jwt": ("query", DONE, "200"),
    "demo-require-jarm/query-jwt": ("query", NOT_ENCRYPTED, "200"),
    # Refused before the consent page; the refusal itself is a verified JWT.
    "demo-require-jarm/query": ("query", NOT_ENCRYPTED, None),
}


def screenshot_path(name: str, tmp_dir: Path) -> Path:
    target = SCREENSHOTS / name
    if os.environ.get("JARM_UPDATE_SCREENSHOTS") == "1" or not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_dir / name


def updating_screenshots() -> bool:
    names = ("demo-home.png", "result-page.png", "admin-client.png")
    return os.environ.get("JARM_UPDATE_SCREENSHOTS") == "1" or not all((SCREENSHOTS / n).exists() for n in names)


def free_port() -> int:
    """A free port; 8000 when the screenshots are for the README (which says 8000) and it is free."""
    for port in (8000, 0) if updating_screenshots() else (0,):
        with socket.socket() as sock:
            # As the server does: a port whose connections linger in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise AssertionError("no free port")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``manage.py jarm_demo`` in its own process; the base URL once it answers."""
    directory = tmp_path_factory.mktemp("browser_demo")
    env = {**demo_environment(directory), "PYTHONUNBUFFERED": "1"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = directory / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "jarm_demo", "--addrport", f"127.0.0.1:{port}", "--noreload"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"jarm_demo exited with status {process.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/o/.well-known/jwks.json", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jarm_demo did not answer on {base} within 90 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        banner = log_path.read_text()
        assert f"Open        {base}/" in banner
        assert "Log in as   demo / demo" in banner
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, demo_server: str) -> Iterator[Page]:
    """One browser tab, logged in as the demo user."""
    context = browser.new_context(viewport={"width": 1200, "height": 800}, base_url=demo_server)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.goto("/accounts/login/?next=/")
    tab.fill("#id_username", "demo")
    tab.fill("#id_password", "demo")
    tab.click("form.login button[type=submit]")
    expect(tab.locator("header")).to_contain_text("Logged in as demo")
    try:
        yield tab
    finally:
        context.close()


def outcomes(page: Page) -> list[str | None]:
    return [step.get_attribute("data-outcome") for step in page.locator("ol.steps > li[data-step]").all()]


def start(page: Page, flow: str, *, consent: str | None = "Authorize") -> list[Response]:
    """Press the flow's button on the home page (and a consent button); the responses seen."""
    seen: list[Response] = []

    def record(response: Response) -> None:
        seen.append(response)

    page.on("response", record)
    try:
        page.goto("/")
        page.locator(f'button[data-flow="{flow}"]').click()
        if consent is not None:
            page.wait_for_url(re.compile(r"/o/authorize/"))
            page.locator(f'#authorizationForm input[type=submit][value="{consent}"]').click()
        page.wait_for_url(re.compile(r"/result/[^/]+/$"))
        page.wait_for_load_state()
    finally:
        page.remove_listener("response", record)
    return seen


def test_home_page_lists_every_flow(page: Page, tmp_path: Path) -> None:
    page.goto("/")

    flows = [button.get_attribute("data-flow") for button in page.locator("button[data-flow]").all()]
    assert flows == list(FLOWS)
    expect(page.locator("header nav")).to_contain_text("Admin")
    expect(page.get_by_text("Keys in the JWK Set")).to_be_visible()
    page.screenshot(path=screenshot_path("demo-home.png", tmp_path), full_page=True)


@pytest.mark.parametrize("flow", list(FLOWS))
def test_every_flow_reaches_a_verified_result(page: Page, flow: str, tmp_path: Path) -> None:
    delivery, steps, token_status = FLOWS[flow]
    client_id = flow.split("/")[0]
    refused_before_consent = flow == "demo-require-jarm/query"

    seen = start(page, flow, consent=None if refused_before_consent else "Authorize")

    callbacks = [response for response in seen if f"/callback/{client_id}/" in response.url]
    if delivery == "form_post":
        # The server's page submitted itself: the callback received a POST.
        assert [response.request.method for response in callbacks] == ["POST"]
        assert any("/o/authorize/" in response.url and response.status == 200 for response in seen)
    elif delivery == "fragment":
        # The callback page (no query: the response is in the fragment) ran its script, which
        # posted the fragment back.
        assert [response.request.method for response in callbacks] == ["GET", "POST"]
        assert "?" not in callbacks[0].url
        assert any(response.url.endswith("/static/relying_party/fragment.js") for response in seen)
    else:
        assert [response.request.method for response in callbacks] == ["GET"]
        assert "?response=" in callbacks[0].url
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "pass")
    assert outcomes(page) == steps
    expect(page.locator(".badge.fail")).to_have_count(0)
    token = page.locator("[data-token-status]")
    if token_status is None:
        expect(token).to_have_count(0)
        expect(page.locator("[data-error]")).to_have_attribute("data-error", "invalid_request")
    else:
        expect(token).to_have_attribute("data-token-status", token_status)
        expect(token).to_contain_text('"access_token"')
        # Tokens are shown shortened, never whole.
        assert re.search(r'"access_token": "[^"]{8}…"', token.inner_text())
    if flow == "demo-hybrid-encrypted/fragment-jwt":
        expect(page.locator("[data-id-token-outcome]")).to_have_count(2)
        expect(page.locator("li[data-step='1']")).to_contain_text("RSA-OAEP-256")
        page.evaluate("window.scrollTo(0, 0)")
        box = token.bounding_box()
        assert box is not None
        # From the top to the end of the token endpoint's answer (the ID token details below are cut).
        page.screenshot(
            path=screenshot_path("result-page.png", tmp_path),
            full_page=True,
            clip={"x": 0, "y": 0, "width": 1200, "height": box["y"] + box["height"] + 16},
        )


def test_deny_returns_a_verified_access_denied(page: Page) -> None:
    start(page, "demo-code-jwt/jwt", consent="Cancel")

    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "pass")
    assert outcomes(page) == NOT_ENCRYPTED
    expect(page.locator("[data-error]")).to_have_attribute("data-error", "access_denied")
    expect(page.locator("[data-token-status]")).to_have_count(0)


def test_reloading_a_callback_url_is_refused(page: Page) -> None:
    seen = start(page, "demo-code-jwt/jwt")
    callback = next(response.url for response in seen if "/callback/demo-code-jwt/?response=" in response.url)

    page.goto(callback)

    page.wait_for_url(re.compile(r"/result/[^/]+/$"))
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "fail")
    assert outcomes(page) == [*NOT_ENCRYPTED[:5], "fail"]


def test_admin_shows_the_jarm_settings_and_keys(page: Page, tmp_path: Path) -> None:
    page.goto("/")
    page.locator("header nav").get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="Applications").first.click()
    page.locator("#result_list tbody tr").filter(has_text="Hybrid flow code id_token").locator("a").first.click()

    inline = page.locator(".inline-group").filter(has_text="JARM settings")
    expect(inline).to_be_visible()
    expect(inline.locator("#id_jarm-0-authorization_encrypted_response_alg")).to_have_value("RSA-OAEP-256")
    preview = page.get_by_text("JARM preview")
    expect(preview.first).to_be_visible()
    expect(page.locator("body")).to_contain_text('"cty": "JWT"')
    # The JARM part of the page: the inline, the preview and the save buttons below them.
    page.evaluate("window.scrollTo(0, 0)")
    top, bottom = inline.bounding_box(), page.locator(".submit-row").last.bounding_box()
    assert top is not None
    assert bottom is not None
    page.screenshot(
        path=screenshot_path("admin-client.png", tmp_path),
        full_page=True,
        clip={
            "x": top["x"] - 12,
            "y": top["y"] - 12,
            "width": top["width"] + 24,
            "height": bottom["y"] + bottom["height"] - top["y"] + 24,
        },
    )

    page.goto("/admin/django_jarm/serverkey/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    for alg in ("PS256", "ES256", "EdDSA"):
        expect(page.locator("#result_list")).to_contain_text(alg)


def test_the_key_list_and_key_page_fit_the_screen(page: Page) -> None:
    page.goto("/")
    page.locator("header nav").get_by_role("link", name="Admin").click()
    page.goto("/admin/django_jarm/serverkey/")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    # No horizontal scrolling at 1,200 pixels: every column, dates included, is on the screen
    # (the admin scrolls the table inside its own box, so that box is what must not overflow).
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("#changelist .results").evaluate("box => box.scrollWidth <= box.clientWidth")
    # The action menu and its "Go" button share a line.
    select, go = page.locator(".actions select").bounding_box(), page.locator(".actions button").bounding_box()
    assert select is not None
    assert go is not None
    assert abs(select["y"] - go["y"]) < select["height"]

    page.locator("#result_list tbody tr").filter(has_text="PS256").locator("a").first.click()
    public_key = page.locator(".field-public_key pre")
    expect(public_key).to_contain_text('"kty": "RSA"')
    # The whole key is shown: the RSA modulus wraps instead of running out of its box.
    assert public_key.evaluate("element => element.scrollWidth <= element.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
