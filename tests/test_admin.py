"""Admin: the JARM inline (and preview) on DOT's Application page, and the ServerKey admin."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, override_settings
from django.utils import timezone
from oauth2_provider.models import get_application_model

from django_jarm.keys import decrypt_private_key, generate_server_key
from django_jarm.models import ClientSettings, ServerKey

Application = get_application_model()

INLINE_PREFIX = "jarm"


def _field_values(form: Any) -> dict[str, Any]:
    """What a browser submits for ``form``: checked boxes as "on", nothing for unchecked ones."""
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[form.add_prefix(name)] = "on"
        elif value is not None:
            data[form.add_prefix(name)] = value
    return data


@pytest.fixture
def change_form(admin_client: Any) -> Any:
    """Factory: GET an Application's change page, return (url, POST data the page would submit).

    ``jarm={...}`` sets the JARM inline's fields, adding the inline form when the client has none.
    """

    def build(app: Any, *, jarm: dict[str, Any] | None = None, **fields: Any) -> tuple[str, dict[str, Any]]:
        url = f"/admin/oauth2_provider/application/{app.pk}/change/"
        page = admin_client.get(url)
        assert page.status_code == 200
        data = _field_values(page.context["adminform"].form)
        (inline,) = [i.formset for i in page.context["inline_admin_formsets"] if i.formset.prefix == INLINE_PREFIX]
        management = inline.management_form
        data.update({f"{INLINE_PREFIX}-{name}": management[name].value() for name in management.fields})
        for form in inline.forms:
            data.update(_field_values(form))
        if jarm is not None:
            if not inline.forms:
                empty = inline.empty_form
                data.update({key.replace("__prefix__", "0"): value for key, value in _field_values(empty).items()})
                data[f"{INLINE_PREFIX}-TOTAL_FORMS"] = 1
                data[f"{INLINE_PREFIX}-0-application"] = app.pk
            for name, value in jarm.items():
                key = f"{INLINE_PREFIX}-0-{name}"
                if value is False or value == []:  # unticked: the browser sends nothing
                    data.pop(key, None)
                else:
                    data[key] = "on" if value is True else value
        data.update(fields)
        return url, data

    return build


def _inline_form(page: Any) -> Any:
    (inline,) = [i.formset for i in page.context["inline_admin_formsets"] if i.formset.prefix == INLINE_PREFIX]
    return inline.forms[0] if inline.forms else inline.empty_form


HMAC_ENABLED = {"SIGNING_ALGS_SUPPORTED": ["ES256", "PS256", "HS256"]}


# The JARM inline on the Application page ---------------------------------------------------


@pytest.mark.django_db
def test_change_page_offers_the_jarm_inline(admin_client, make_app):
    app = make_app()
    content = admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").content.decode()

    assert 'name="jarm-TOTAL_FORMS"' in content
    assert 'name="jarm-__prefix__-authorization_signed_response_alg"' in content  # "Add another"
    assert "JARM settings" in content


@pytest.mark.django_db
def test_change_page_shows_existing_settings(admin_client, make_app):
    app = make_app(jarm={"authorization_signed_response_alg": "PS256", "response_modes": ["jwt"]})
    page = admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/")
    content = page.content.decode()

    assert 'name="jarm-0-authorization_signed_response_alg"' in content
    assert '<option value="PS256" selected>PS256</option>' in content
    assert _inline_form(page)["response_modes"].value() == ["jwt"]


@pytest.mark.django_db
def test_inline_offers_only_what_the_server_supports(admin_client, make_app):
    app = make_app()
    with override_settings(JARM={"PROFILE": "fapi1-advanced", "RESPONSE_MODES_SUPPORTED": ["jwt", "query.jwt"]}):
        page = admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/")
        form = _inline_form(page)

        assert [value for value, _ in form.fields["authorization_signed_response_alg"].choices] == [
            "",
            "PS256",
            "ES256",
        ]
        assert [value for value, _ in form.fields["response_modes"].choices] == ["jwt", "query.jwt"]


@pytest.mark.django_db
def test_valid_inline_save_creates_the_settings(admin_client, make_app, change_form):
    app = make_app()
    url, data = change_form(
        app,
        jarm={
            "authorization_signed_response_alg": "ES256",
            "response_modes": ["jwt", "form_post.jwt"],
            "require_jarm": True,
        },
    )

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    client_settings = ClientSettings.objects.get(application=app)
    assert client_settings.authorization_signed_response_alg == "ES256"
    assert client_settings.response_modes == ["jwt", "form_post.jwt"]
    assert client_settings.require_jarm is True
    assert client_settings.jwks is None
    assert client_settings.jwks_uri == ""


@pytest.mark.django_db
def test_no_mode_ticked_saves_an_empty_list(admin_client, make_app, change_form):
    app = make_app(jarm={"response_modes": ["jwt"]})
    url, data = change_form(app, jarm={"response_modes": []})

    response = admin_client.post(url, data)

    assert response.status_code == 302
    assert ClientSettings.objects.get(application=app).response_modes == []


@pytest.mark.django_db
@override_settings(JARM=HMAC_ENABLED)
def test_hmac_with_a_hashed_secret_is_refused_on_the_page(admin_client, make_app, change_form):
    app = make_app(hash_client_secret=True)
    url, data = change_form(app, jarm={"authorization_signed_response_alg": "HS256"})

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "HS256 uses the client secret as key material, and this client stores it hashed." in html.unescape(
        response.content.decode()
    )
    assert not ClientSettings.objects.filter(application=app).exists()


@pytest.mark.django_db
def test_hmac_is_not_offered_unless_enabled(admin_client, make_app, change_form):
    app = make_app(hash_client_secret=False, client_secret="s" * 64)
    url, data = change_form(app, jarm={"authorization_signed_response_alg": "HS256"})

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert _inline_form(response).errors == {
        "authorization_signed_response_alg": ["Select a valid choice. HS256 is not one of the available choices."]
    }
    assert not ClientSettings.objects.filter(application=app).exists()


@pytest.mark.django_db
@override_settings(JARM=HMAC_ENABLED)
def test_inline_validation_sees_the_application_fields_posted_with_it(admin_client, make_app, change_form):
    # Turning hashing on in the same save must not slip an HS256 client past validation.
    app = make_app(
        hash_client_secret=False, client_secret="s" * 64, jarm={"authorization_signed_response_alg": "HS256"}
    )
    url, data = change_form(app, hash_client_secret="on")

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert _inline_form(response).errors == {
        "authorization_signed_response_alg": [
            "HS256 uses the client secret as key material, and this client stores it hashed. Turn off "
            "'hash client secret' and set a new secret, or choose an asymmetric algorithm."
        ]
    }
    app.refresh_from_db()
    assert app.hash_client_secret is False
    assert app.client_secret == "s" * 64


@pytest.mark.django_db
def test_editing_an_existing_inline(admin_client, make_app, change_form):
    app = make_app(jarm={"authorization_signed_response_alg": "PS256"})
    url, data = change_form(
        app, jarm={"authorization_signed_response_alg": "ES256", "jwks_uri": "http://rp.example/jwks"}
    )

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert _inline_form(response).errors == {"jwks_uri": ["The JWK Set URL must use https."]}
    assert ClientSettings.objects.get(application=app).authorization_signed_response_alg == "PS256"


@pytest.mark.django_db
def test_preview_names_the_signing_key_and_shows_no_private_material(admin_client, make_app):
    server_key = generate_server_key("ES256")
    app = make_app(jarm={"authorization_signed_response_alg": "ES256"})

    content = admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").content.decode()

    assert f"<code>{server_key.kid}</code>" in content
    assert_no_private_material(content, [server_key])


@pytest.mark.django_db
def test_preview_explains_why_no_response_can_be_built(admin_client, make_app):
    app = make_app(jarm={"authorization_signed_response_alg": "EdDSA"})
    content = html.unescape(admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").content.decode())
    assert "No active server key for EdDSA; run `manage.py jarm_keys generate --alg EdDSA`." in content


# ServerKey admin ---------------------------------------------------------------------------

#: Text that only private key material produces, raw or JSON-encoded.
PRIVATE_MARKERS = ['"d":', '"p":', '"q":', '"dp":', '"dq":', '"qi":', '"k":', "PRIVATE KEY"]


@pytest.fixture
def server_keys() -> list[ServerKey]:
    return [generate_server_key("PS256"), generate_server_key("ES256"), generate_server_key("EdDSA")]


def assert_no_private_material(content: str, server_keys: list[ServerKey]) -> None:
    for text in (content, html.unescape(content)):
        for marker in PRIVATE_MARKERS:
            assert marker not in text
        for server_key in server_keys:
            private = json.loads(decrypt_private_key(server_key.private_jwk_encrypted).export_private())
            for member in ("d", "p", "q", "dp", "dq", "qi"):
                if member in private:
                    assert private[member] not in text
            assert server_key.private_jwk_encrypted not in text


@pytest.mark.django_db
def test_server_key_changelist_shows_kids_and_no_private_material(admin_client, server_keys):
    response = admin_client.get("/admin/django_jarm/serverkey/")

    assert response.status_code == 200
    content = response.content.decode()
    for server_key in server_keys:
        assert server_key.kid in content
    assert "/admin/django_jarm/serverkey/add/" not in content
    assert_no_private_material(content, server_keys)


@pytest.mark.django_db
def test_server_key_changelist_links_to_the_generate_page(admin_client):
    content = admin_client.get("/admin/django_jarm/serverkey/").content.decode()
    assert 'href="/admin/django_jarm/serverkey/generate/"' in content


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["change/", "history/"])
def test_server_key_pages_show_no_private_material(admin_client, server_keys, page):
    for server_key in server_keys:
        response = admin_client.get(f"/admin/django_jarm/serverkey/{server_key.pk}/{page}")

        assert response.status_code == 200
        content = response.content.decode()
        assert server_key.kid in content
        assert_no_private_material(content, server_keys)


@pytest.mark.django_db
def test_server_key_change_page_shows_the_public_key(admin_client, server_keys):
    ps256 = server_keys[0]
    content = html.unescape(admin_client.get(f"/admin/django_jarm/serverkey/{ps256.pk}/change/").content.decode())
    assert ps256.public_jwk["n"] in content


@pytest.mark.django_db
def test_server_keys_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get("/admin/django_jarm/serverkey/add/").status_code == 403
    assert admin_client.post("/admin/django_jarm/serverkey/add/", {"alg": "ES256"}).status_code == 403
    assert not ServerKey.objects.exists()


@pytest.mark.django_db
def test_server_keys_cannot_be_edited_or_deleted_in_the_admin(admin_client, server_keys):
    ps256 = server_keys[0]
    change_url = f"/admin/django_jarm/serverkey/{ps256.pk}/change/"
    assert admin_client.post(change_url, {"status": "retired", "alg": "PS256"}).status_code == 403
    assert admin_client.get(f"/admin/django_jarm/serverkey/{ps256.pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/django_jarm/serverkey/{ps256.pk}/delete/", {"post": "yes"}).status_code == 403
    ps256.refresh_from_db()
    assert ps256.status == ServerKey.Status.ACTIVE
    assert ServerKey.objects.count() == 3


@pytest.mark.django_db
def test_generate_a_key_from_the_admin(admin_client):
    assert admin_client.get("/admin/django_jarm/serverkey/generate/").status_code == 200

    response = admin_client.post("/admin/django_jarm/serverkey/generate/", {"alg": "ES256"}, follow=True)

    server_key = ServerKey.objects.get()
    assert (server_key.alg, server_key.status) == ("ES256", ServerKey.Status.ACTIVE)
    assert response.redirect_chain == [("/admin/django_jarm/serverkey/", 302)]
    assert [str(m) for m in response.context["messages"]] == [f"Generated ES256 key {server_key.kid} (active)."]
    assert_no_private_material(response.content.decode(), [server_key])


def _run_action(client: Any, action: str, *server_keys: ServerKey) -> Any:
    return client.post(
        "/admin/django_jarm/serverkey/",
        {"action": action, "_selected_action": [key.pk for key in server_keys], "index": 0},
        follow=True,
    )


@pytest.mark.django_db
def test_activate_action_makes_the_active_key_retiring(admin_client, published_since):
    old = generate_server_key("ES256")
    new = generate_server_key("ES256")
    published_since(new)

    response = _run_action(admin_client, "activate_keys", new)

    assert [str(m) for m in response.context["messages"]] == [f"Key {new.kid} is active."]
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, new.status) == (ServerKey.Status.RETIRING, ServerKey.Status.ACTIVE)


@pytest.mark.django_db
def test_retire_action_refuses_the_active_key(admin_client):
    active = generate_server_key("ES256")
    following = generate_server_key("ES256")

    response = _run_action(admin_client, "retire_keys", active, following)

    assert sorted(str(m) for m in response.context["messages"]) == sorted(
        [
            f"Key {active.kid} is signing ES256 responses; activate another ES256 key first.",
            f"Key {following.kid} is retired.",
        ]
    )
    active.refresh_from_db()
    following.refresh_from_db()
    assert (active.status, following.status) == (ServerKey.Status.ACTIVE, ServerKey.Status.RETIRED)


@pytest.fixture
def viewer_client(django_user_model: Any) -> Client:
    """A staff user who may only view server keys."""
    viewer = django_user_model.objects.create_user("viewer", "viewer@example.com", "viewer-password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_serverkey"))
    client = Client()
    client.force_login(viewer)
    return client


@pytest.mark.django_db
def test_view_only_staff_cannot_generate_keys(viewer_client):
    assert viewer_client.get("/admin/django_jarm/serverkey/").status_code == 200
    assert viewer_client.post("/admin/django_jarm/serverkey/generate/", {"alg": "ES256"}).status_code == 403
    assert not ServerKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["activate_keys", "retire_keys"])
def test_view_only_staff_cannot_run_key_actions(viewer_client, action):
    generate_server_key("ES256")
    following = generate_server_key("ES256")

    _run_action(viewer_client, action, following)

    following.refresh_from_db()
    assert following.status == ServerKey.Status.NEXT


@pytest.mark.django_db
def test_preview_shows_the_encryption_header_and_claims(admin_client, make_app):
    from joserfc.jwk import RSAKey

    server_key = generate_server_key("PS256")
    client_key = RSAKey.generate_key(2048, parameters={"kid": "client-enc", "use": "enc"})
    app = make_app(
        jarm={
            "authorization_signed_response_alg": "PS256",
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "jwks": {"keys": [client_key.as_dict(private=False)]},
        }
    )
    content = html.unescape(admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").content.decode())
    assert "JARM preview" in content
    assert '"alg": "RSA-OAEP-256"' in content
    assert '"enc": "A128CBC-HS256"' in content
    assert '"cty": "JWT"' in content
    assert '"kid": "client-enc"' in content
    assert f'"aud": "{app.client_id}"' in content
    assert '"iss": "http://testserver/o"' in content
    assert_no_private_material(content, [server_key])
    assert client_key.as_dict(private=True)["d"] not in content


def test_inline_is_added_whatever_the_order_of_apps(tmp_path):
    """django_jarm listed before oauth2_provider still gets its inline (autodiscovery order)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "jarm_first_settings.py").write_text(
        "from tests.settings import *\n"
        "INSTALLED_APPS = [a for a in INSTALLED_APPS if a != 'oauth2_provider']\n"
        "INSTALLED_APPS.insert(INSTALLED_APPS.index('django_jarm') + 1, 'oauth2_provider')\n"
        "assert INSTALLED_APPS.index('django_jarm') < INSTALLED_APPS.index('oauth2_provider')\n"
    )
    script = (
        "import django; django.setup()\n"
        "from django.contrib import admin; admin.autodiscover()\n"
        "from oauth2_provider.models import get_application_model\n"
        "from django_jarm.admin import ClientSettingsInline\n"
        "model_admin = admin.site._registry[get_application_model()]\n"
        "assert ClientSettingsInline in model_admin.inlines, model_admin.inlines\n"
        "print('inline ok')\n"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env={
            **os.environ,
            "PYTHONPATH": f"{tmp_path}:{root}",
            "DJANGO_SETTINGS_MODULE": "jarm_first_settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "inline ok" in result.stdout


@pytest.mark.django_db
def test_activate_action_says_how_long_a_fresh_key_must_wait(admin_client):
    old = generate_server_key("ES256")
    new = generate_server_key("ES256")

    response = _run_action(admin_client, "activate_keys", new)

    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith(f"Key {new.kid} has been published for 0 s; clients may cache the JWK Set for 3600 s")
    assert "(in 3601 s)" in message
    old.refresh_from_db()
    assert old.status == ServerKey.Status.ACTIVE


@pytest.mark.django_db
def test_rotate_action(admin_client, published_since):
    first = generate_server_key("PS256")
    published_since(first)
    response = admin_client.post(
        "/admin/django_jarm/serverkey/",
        {"action": "rotate_algorithms", "_selected_action": [first.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "PS256: no key activated: the next key" in response.content.decode()
    first.refresh_from_db()
    assert first.status == "active"  # the first rotation prepares the next key
    upcoming = ServerKey.objects.get(alg="PS256", status="next")
    published_since(upcoming)
    response = admin_client.post(
        "/admin/django_jarm/serverkey/",
        {"action": "rotate_algorithms", "_selected_action": [first.pk]},
        follow=True,
    )
    first.refresh_from_db()
    assert first.status == "retiring"
    assert ServerKey.objects.filter(alg="PS256", status="active").get().kid == upcoming.kid
    assert ServerKey.objects.filter(alg="PS256", status="next").count() == 1
    assert f"PS256: {upcoming.kid} is active; {first.kid} is retiring" in response.content.decode()


# What a newcomer sees ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_client_without_settings_gets_the_form_not_an_add_link(admin_client, make_app, change_form):
    app = make_app()
    page = admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/")
    content = html.unescape(page.content.decode())
    assert 'name="jarm-0-authorization_signed_response_alg"' in content
    # One form of at most one: Django's script shows no "Add another JARM settings" link.
    assert 'name="jarm-TOTAL_FORMS" value="1"' in content
    assert 'name="jarm-MAX_NUM_FORMS" value="1"' in content
    # Saved untouched, the empty form creates no row: the client keeps the server defaults.
    url, data = change_form(app)
    assert admin_client.post(url, data).status_code == 302
    assert not ClientSettings.objects.filter(application=app).exists()


def jwks_box(content: str) -> str:
    """The text in the inline's JWK Set box."""
    match = re.search(r'<textarea name="jarm-0-jwks"[^>]*>(.*?)</textarea>', content, flags=re.S)
    assert match, "no JWK Set box"
    return match[1].strip()


@pytest.mark.django_db
@pytest.mark.parametrize("jarm", [None, {"authorization_signed_response_alg": "PS256"}])
def test_an_empty_jwk_set_is_an_empty_box_not_null(admin_client, make_app, jarm):
    app = make_app(jarm=jarm)
    page = admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/")
    assert _inline_form(page)["jwks"].value() in (None, "")
    assert jwks_box(page.content.decode()) == ""


@pytest.mark.django_db
def test_an_empty_jwk_set_stays_empty_after_a_failed_save(admin_client, make_app, change_form):
    app = make_app(jarm={"authorization_signed_response_alg": "PS256"})
    url, data = change_form(app, jarm={"jwks_uri": "http://rp.example/jwks"})
    response = admin_client.post(url, data)
    assert _inline_form(response).errors  # refused: http
    assert jwks_box(response.content.decode()) == ""


@pytest.mark.django_db
def test_the_inline_heading_names_the_client_once(admin_client, make_app):
    app = make_app(jarm={"authorization_signed_response_alg": "PS256"})
    content = html.unescape(admin_client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").content.decode())
    assert "JARM settings of" not in content
    assert re.search(rf'<b>JARM settings:</b> <span class="inline_label">{app.client_id}\s*</span>', content)


@pytest.mark.django_db
def test_the_applications_list_shows_the_client_id(admin_client, make_app):
    app = make_app()
    content = admin_client.get("/admin/oauth2_provider/application/").content.decode()
    assert "column-client_id" in content
    assert f'<td class="field-client_id">{app.client_id}</td>' in content


@pytest.mark.django_db
def test_the_key_list_is_compact(admin_client, server_keys):
    content = admin_client.get("/admin/django_jarm/serverkey/").content.decode()
    created = timezone.localtime(server_keys[0].created).strftime("%Y-%m-%d")
    assert re.search(rf'<td class="field-created_on[^"]*">{created}</td>', content)
    for key in server_keys:  # the kid's start, the whole kid on hover
        assert f'<span title="{key.kid}">{key.kid[:8]}…</span>' in content
    for label in ("Activate the selected key", "Retire the selected keys", "Rotate the selected keys&#x27; algorithms"):
        assert f">{label}</option>" in content


@pytest.mark.django_db
def test_the_key_page_shows_the_whole_public_key_wrapped(admin_client, server_keys):
    ps256 = server_keys[0]
    content = admin_client.get(f"/admin/django_jarm/serverkey/{ps256.pk}/change/").content.decode()
    opening = '<pre style="white-space: pre-wrap; overflow-wrap: anywhere; margin: 0">'
    shown = html.unescape(content.split(opening, 1)[1].split("</pre>", 1)[0])
    # The whole key, member for member (PostgreSQL's jsonb keeps its own member order).
    ps256.refresh_from_db()
    assert json.loads(shown) == ps256.public_jwk
    assert shown == json.dumps(ps256.public_jwk, indent=2)
