"""Pushed authorization requests (RFC 9126) at the authorization endpoint, where DOT has them.

DOT serves the PAR endpoint itself (``par/``, kept by ``django_jarm.urls``). On the
authorization endpoint's GET it consumes the ``request_uri`` and rewrites ``request.GET`` from
the pushed parameters, so the response mode rules read them like any other request. The consent
POST goes back to the URL of the GET, which carries only ``client_id`` and ``request_uri``: the
consent form's hidden ``response_mode`` field carries the mode there.

Everything here answers "no" (or nothing) when the installed DOT has no PAR.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from oauth2_provider.settings import oauth2_settings

from ._compat import dot_has_par
from .conf import jarm_settings
from .exceptions import Refusal

#: RFC 9126 2.2: request URIs issued by a PAR endpoint use this IANA-registered URN namespace.
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"

#: DOT's URL name of its PAR endpoint.
PAR_URL_NAME = "pushed-authorization-request"

PAR_REQUIRED_DESCRIPTION = "This authorization server requires pushed authorization requests."


def par_enabled() -> bool:
    """Whether this server accepts pushed authorization requests: DOT has PAR and it is on."""
    return dot_has_par() and bool(oauth2_settings.PAR_ENABLED)


def par_required() -> bool:
    """Whether every authorization request must be pushed.

    The FAPI 2.0 Security Profile makes the authorization server require PAR; only when the
    installed DOT serves it (without PAR, refusing every request would not comply either).
    """
    return jarm_settings.PROFILE == "fapi2-message-signing" and par_enabled()


def is_pushed_request(request: HttpRequest) -> bool:
    """Whether the URL of this authorization request names a request URI issued by ``par/``.

    It reads the URL as the user agent sent it: call it before DOT resolves the request URI
    on the GET (DOT then replaces the query with the pushed parameters), or on the consent
    POST, whose URL keeps it. Whether the request URI is still valid is DOT's to decide.
    RFC 9126 5: such a request URI is usable whatever ``request_uri_parameter_supported`` says.
    """
    if not par_enabled():
        return False
    values = request.GET.getlist("request_uri")
    return len(values) == 1 and values[0].startswith(REQUEST_URI_PREFIX)


def requested_response_modes(request: HttpRequest) -> list[str]:
    """The ``response_mode`` values of an authorization request; more than one is an error.

    On the consent POST the form's hidden field is authoritative. Without PAR a different
    value in the URL counts as a repeat; for a pushed request the URL's other parameters are
    ignored, as DOT ignores them on the GET (RFC 9126 4: the pushed request is authoritative).
    """
    queried = [value for value in request.GET.getlist("response_mode") if value]
    if request.method != "POST":
        return queried
    pushed = is_pushed_request(request)
    if "response_mode" not in request.POST:
        return [] if pushed else queried
    posted = [value for value in request.POST.getlist("response_mode") if value]
    if not pushed and queried and queried != posted:
        return posted + queried
    return posted


def unpushed_request_refusal(request: HttpRequest) -> Refusal | None:
    """The error for an authorization request that should have been pushed, else ``None``.

    Answered on an error page, never redirected (as DOT does for its own PAR requirement):
    the client and redirect URI of a request that skipped PAR are not trusted. Applies to the
    consent POST too, whose URL carries the request URI of the GET.
    """
    if not par_required() or is_pushed_request(request):
        return None
    return Refusal("invalid_request", PAR_REQUIRED_DESCRIPTION)


def par_metadata(request: HttpRequest) -> dict[str, Any]:
    """The RFC 9126 5 members of the discovery documents: present exactly when PAR is served.

    DOT adds them to its RFC 8414 document only; OpenID Provider metadata gets them here too
    (FAPI 2.0 clients read ``pushed_authorization_request_endpoint`` from either).
    """
    if not par_enabled():
        return {}
    try:
        path = reverse(f"oauth2_provider:{PAR_URL_NAME}")
    except NoReverseMatch:
        return {}
    if oauth2_settings.OIDC_ISS_ENDPOINT:
        parts = urlsplit(oauth2_settings.OIDC_ISS_ENDPOINT)
        url = f"{parts.scheme}://{parts.netloc}{path}"
    else:
        url = request.build_absolute_uri(path)
    metadata: dict[str, Any] = {"pushed_authorization_request_endpoint": url}
    if par_required() or oauth2_settings.REQUIRE_PUSHED_AUTHORIZATION_REQUESTS:
        metadata["require_pushed_authorization_requests"] = True
    return metadata
