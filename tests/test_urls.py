from __future__ import annotations

import pytest
from django.urls import resolve, reverse

from django_jarm import registration, views


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("authorize", "/o/authorize/"),
        ("token", "/o/token/"),
        ("revoke-token", "/o/revoke_token/"),
        ("introspect", "/o/introspect/"),
        ("user-info", "/o/userinfo/"),
        ("jwks-info", "/o/.well-known/jwks.json"),
        ("oidc-connect-discovery-info", "/o/.well-known/openid-configuration"),
        ("oauth-server-metadata", "/o/.well-known/oauth-authorization-server"),
        ("list", "/o/applications/"),
        ("dcr-register", "/o/register/"),
    ],
)
def test_dot_names_still_reverse(name, path):
    assert reverse(f"oauth2_provider:{name}") == path


@pytest.mark.parametrize(
    ("path", "view_class"),
    [
        ("/o/authorize/", views.JARMAuthorizationView),
        ("/o/.well-known/jwks.json", views.JARMJwksInfoView),
        ("/o/.well-known/openid-configuration", views.JARMConnectDiscoveryInfoView),
        ("/o/.well-known/oauth-authorization-server", views.JARMOAuthServerMetadataView),
        ("/o/.well-known/oauth-authorization-server/tenant", views.JARMOAuthServerMetadataView),
        ("/o/register/", registration.JARMDynamicClientRegistrationView),
        ("/o/register/abc/", registration.JARMDynamicClientRegistrationManagementView),
    ],
)
def test_jarm_views_are_swapped_in(path, view_class):
    assert resolve(path).func.view_class is view_class


def test_other_dot_views_are_kept():
    from oauth2_provider.views import TokenView

    assert resolve("/o/token/").func.view_class is TokenView
