"""The JARM views under ``o/`` (as in the test project) and DOT's own views under ``dot/``."""

from __future__ import annotations

from django.urls import include, path
from oauth2_provider import views as dot_views

urlpatterns = [
    path("o/", include("django_jarm.urls")),
    # DOT's views, unchanged: the baselines. They reverse their links in DOT's namespace,
    # which django_jarm.urls provides, so both discovery documents name the same endpoints.
    path("dot/authorize/", dot_views.AuthorizationView.as_view(), name="dot-authorize"),
    path("dot/.well-known/jwks.json", dot_views.JwksInfoView.as_view(), name="dot-jwks"),
    path(
        "dot/.well-known/openid-configuration",
        dot_views.ConnectDiscoveryInfoView.as_view(),
        name="dot-discovery",
    ),
]
