"""DOT's URL patterns, in DOT's ``oauth2_provider`` namespace, with the JARM views swapped in.

Use ``path("o/", include("django_jarm.urls"))`` instead of DOT's include: every DOT route
keeps its name (``reverse("oauth2_provider:token")`` still works), including routes DOT adds
in later releases.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, URLResolver
from oauth2_provider import urls as dot_urls

from . import registration, views
from ._compat import dot_has_par

app_name = dot_urls.app_name

#: URL name -> the view that replaces DOT's.
OVERRIDES: dict[str, Any] = {
    "authorize": views.JARMAuthorizationView.as_view(),
    "oidc-connect-discovery-info": views.JARMConnectDiscoveryInfoView.as_view(),
    "oauth-server-metadata": views.JARMOAuthServerMetadataView.as_view(),
    "oauth-server-metadata-issuer": views.JARMOAuthServerMetadataView.as_view(),
    "jwks-info": views.JARMJwksInfoView.as_view(),
    "dcr-register": registration.JARMDynamicClientRegistrationView.as_view(),
    "dcr-register-management": registration.JARMDynamicClientRegistrationManagementView.as_view(),
}
if dot_has_par():
    OVERRIDES["pushed-authorization-request"] = views.pushed_authorization_request_view()


def swap_views(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    """``patterns`` with the views named in :data:`OVERRIDES` replaced, everything else kept."""
    return [
        URLPattern(pattern.pattern, OVERRIDES[pattern.name], pattern.default_args, pattern.name)
        if isinstance(pattern, URLPattern) and pattern.name in OVERRIDES
        else pattern
        for pattern in patterns
    ]


metadata_urlpatterns = swap_views(dot_urls.metadata_urlpatterns)
base_urlpatterns = swap_views(dot_urls.base_urlpatterns)
management_urlpatterns = swap_views(dot_urls.management_urlpatterns)
oidc_urlpatterns = swap_views(dot_urls.oidc_urlpatterns)
dcr_urlpatterns = swap_views(dot_urls.dcr_urlpatterns)
urlpatterns = swap_views(dot_urls.urlpatterns)
