"""The admin's self-test pages: the conformance checks of one client, and of the server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from oauth2_provider.models import get_application_model, get_grant_model

from django_jarm.keys import generate_server_key

pytestmark = pytest.mark.django_db

Application = get_application_model()


@pytest.fixture
def client_app(make_app: Callable[..., Any]) -> Any:
    generate_server_key("ES256")
    return make_app("code", client_id="admin-es256", jarm={"authorization_signed_response_alg": "ES256"})


def self_test_url(app: Any) -> str:
    return reverse("admin:oauth2_provider_application_jarm_self_test", args=[app.pk])


def staff_client(django_user_model: Any, *codenames: str) -> Client:
    staff = django_user_model.objects.create_user("staff", "staff@example.com", "staff-password", is_staff=True)
    for codename in codenames:
        staff.user_permissions.add(Permission.objects.get(codename=codename))
    browser = Client()
    browser.force_login(staff)
    return browser


def test_the_change_page_links_to_the_self_test(admin_client: Client, client_app: Any) -> None:
    page = admin_client.get(reverse("admin:oauth2_provider_application_change", args=[client_app.pk]))

    content = page.content.decode()
    assert page.status_code == 200
    assert f'id="jarm-self-test-link" href="{self_test_url(client_app)}"' in content
    assert content.index('id="jarm-preview"') < content.index('id="jarm-self-test-link"')


def test_get_shows_the_form_and_runs_nothing(admin_client: Client, client_app: Any) -> None:
    page = admin_client.get(self_test_url(client_app))

    content = page.content.decode()
    assert page.status_code == 200
    assert "JARM self-test: admin-es256" in content
    assert '<form method="post">' in content
    assert 'id="jarm-self-test"' not in content  # no results before the POST


def test_post_runs_the_client_flows_and_keeps_nothing(admin_client: Client, client_app: Any) -> None:
    grants, applications = get_grant_model().objects.count(), Application.objects.count()

    page = admin_client.post(self_test_url(client_app))

    content = page.content.decode()
    assert page.status_code == 200
    assert "ValidateJARMSignatureUsingKid" in content
    assert content.count("admin-es256</td>") == 1 + 3 * 3 * 9  # the modes check, then 9 checks x 3 modes x 3 outcomes
    assert ">FAIL<" not in content
    summary = page.context["counts"]
    assert summary == {"FAIL": 0, "WARN": 0, "N/A": 0, "PASS": 82}
    assert (get_grant_model().objects.count(), Application.objects.count()) == (grants, applications)


def test_a_failing_client_shows_the_reason_and_fix(admin_client: Client, make_app: Callable[..., Any]) -> None:
    app = make_app("code", client_id="admin-ps256", jarm={"authorization_signed_response_alg": "PS256"})

    page = admin_client.post(self_test_url(app))

    content = page.content.decode()
    assert '<td class="status-FAIL">FAIL</td><td><code>ExtractJARMFromURLQuery</code></td>' in content
    assert "No active server key for PS256" in content
    assert page.context["counts"]["FAIL"] == 9


def test_the_post_needs_the_csrf_token(django_user_model: Any, client_app: Any) -> None:
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-password")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin)

    assert browser.post(self_test_url(client_app)).status_code == 403
    page = browser.get(self_test_url(client_app))
    token = page.cookies["csrftoken"].value
    assert browser.post(self_test_url(client_app), {"csrfmiddlewaretoken": token}).status_code == 200


def test_viewing_clients_is_not_enough(django_user_model: Any, client_app: Any) -> None:
    viewer = staff_client(django_user_model, "view_application")

    assert viewer.get(self_test_url(client_app)).status_code == 403
    assert viewer.post(self_test_url(client_app)).status_code == 403


def test_anonymous_users_go_to_the_login_page(client: Client, client_app: Any) -> None:
    response = client.post(self_test_url(client_app))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_server_self_test(admin_client: Client, client_app: Any) -> None:
    changelist = admin_client.get(reverse("admin:django_jarm_serverkey_changelist")).content.decode()
    url = reverse("admin:django_jarm_serverkey_self_test")
    assert f'<a href="{url}" id="jarm-server-self-test-link">' in changelist

    page = admin_client.get(url)
    assert page.status_code == 200
    checks = {result.check for result in page.context["results"]}
    assert "CheckForKeyIdInServerJWKs" in checks
    assert not any(result.client_id for result in page.context["results"])  # GET runs no flow

    page = admin_client.post(url)
    assert {result.client_id for result in page.context["results"]} == {"", "admin-es256"}
    assert page.context["counts"]["FAIL"] == 0


def test_the_server_self_test_permissions(django_user_model: Any, client_app: Any) -> None:
    url = reverse("admin:django_jarm_serverkey_self_test")
    key_viewer = staff_client(django_user_model, "view_serverkey")

    page = key_viewer.get(url)
    assert page.status_code == 200
    assert '<form method="post">' not in page.content.decode()  # may not run the client flows
    assert key_viewer.post(url).status_code == 403

    key_viewer.logout()
    nobody = Client()
    other = django_user_model.objects.create_user("other", "other@example.com", "x", is_staff=True)
    nobody.force_login(other)
    assert nobody.get(url).status_code == 403
