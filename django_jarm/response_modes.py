"""Response modes: how an authorization response travels to the client.

A :class:`ResponseMode` is a name plus :meth:`~ResponseMode.render`. The JWT twins render
exactly one parameter, ``response``, built by the caller. :func:`resolve_response_mode`
applies the protocol rules: ``jwt`` resolution, unknown or repeated values, and client policy.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode, urlsplit

from django.core.exceptions import DisallowedRedirect
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from ._compat import OAuth2ResponseRedirect
from .conf import jarm_settings
from .exceptions import Refusal
from .tokens import CompactJWT

Params = Sequence[tuple[str, str]]

FORM_POST_TEMPLATE = "django_jarm/form_post.html"


def _no_store(response: HttpResponse) -> HttpResponse:
    # OAuth 2.0 Form Post Response Mode 2 and JARM 2.3.3: never store or reuse the response.
    response["Cache-Control"] = "no-cache, no-store"
    response["Pragma"] = "no-cache"
    return response


def _check_scheme(redirect_uri: str, allowed_schemes: Collection[str]) -> None:
    scheme = urlsplit(redirect_uri).scheme
    if not scheme or scheme not in allowed_schemes:
        raise DisallowedRedirect(f"Redirect to scheme {scheme!r} is not permitted")


class ResponseMode:
    """Delivers response parameters to the client's redirect URI."""

    name: str = ""
    #: Whether this mode carries a single ``response`` JWT.
    is_jwt: bool = False
    #: Name of the plain mode that shares this mode's encoding.
    plain_name: str = ""

    def render(
        self, request: HttpRequest, redirect_uri: str, params: Params, *, allowed_schemes: Collection[str]
    ) -> HttpResponse:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class _RedirectMode(ResponseMode):
    def prefix(self, redirect_uri: str) -> str:
        """The redirect URL up to the response parameters: the URI, then ``?``, ``&`` or ``#``."""
        raise NotImplementedError

    def location(self, redirect_uri: str, params: Params) -> str:
        return self.prefix(redirect_uri) + urlencode(list(params))

    def render(
        self, request: HttpRequest, redirect_uri: str, params: Params, *, allowed_schemes: Collection[str]
    ) -> HttpResponse:
        if len(params) == 1 and type(params[0][1]) is CompactJWT:
            # The response JWT as built by tokens needs no escaping (its characters are all
            # unreserved), so DOT's redirect is built and checked on the URL up to it, which has
            # the same scheme, and the token is appended: the same Location, without escaping
            # and parsing a long token for nothing.
            name, token = params[0]
            response = OAuth2ResponseRedirect(f"{self.prefix(redirect_uri)}{quote_plus(name)}=", allowed_schemes)
            response["Location"] += token
        else:
            response = OAuth2ResponseRedirect(self.location(redirect_uri, params), allowed_schemes)
        # FAPI 2.0 Security Profile 5.3.2.2 advises 303 for redirects after a POST.
        response.status_code = jarm_settings.redirect_status
        return _no_store(response)


class QueryResponseMode(_RedirectMode):
    name = plain_name = "query"

    def prefix(self, redirect_uri: str) -> str:
        # The registered redirect URI may carry its own query; it must survive untouched.
        separator = "&" if urlsplit(redirect_uri).query else ("" if redirect_uri.endswith("?") else "?")
        return f"{redirect_uri}{separator}"


class FragmentResponseMode(_RedirectMode):
    name = plain_name = "fragment"

    def prefix(self, redirect_uri: str) -> str:
        # RFC 6749 3.1.2: a redirection endpoint URI has no fragment of its own.
        return f"{redirect_uri.split('#', 1)[0]}#"


class FormPostResponseMode(ResponseMode):
    """OAuth 2.0 Form Post Response Mode: a self-submitting HTML form."""

    name = plain_name = "form_post"
    template_name = FORM_POST_TEMPLATE

    def render(
        self, request: HttpRequest, redirect_uri: str, params: Params, *, allowed_schemes: Collection[str]
    ) -> HttpResponse:
        _check_scheme(redirect_uri, allowed_schemes)
        nonce = secrets.token_urlsafe(18)
        html = render_to_string(
            self.template_name,
            {"action": redirect_uri, "params": list(params), "csp_nonce": nonce},
            request=request,
        )
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = "; ".join(
            [
                "default-src 'none'",
                f"script-src 'nonce-{nonce}'",
                f"style-src 'nonce-{nonce}'",
                f"form-action {form_action_source(redirect_uri)}",
                "frame-ancestors 'none'",
                "base-uri 'none'",
            ]
        )
        response["Referrer-Policy"] = "no-referrer"
        response["X-Frame-Options"] = "DENY"
        return _no_store(response)


def form_action_source(redirect_uri: str) -> str:
    """A CSP source expression admitting the form's target.

    The origin rather than the full path: browsers also apply ``form-action`` to redirects
    that follow the submission, and clients commonly redirect within their own origin.
    """
    parts = urlsplit(redirect_uri)
    scheme = parts.scheme.lower()
    if not _CSP_SCHEME.fullmatch(scheme):
        return "'none'"
    if not parts.netloc:
        return f"{scheme}:"
    host = parts.netloc.rsplit("@", 1)[-1]
    # CSP3 host-source grammar: nothing else (';' or ',' would start another directive).
    if not _CSP_HOST.fullmatch(host):
        return f"{scheme}:"
    return f"{scheme}://{host}"


_CSP_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
_CSP_HOST = re.compile(r"(?:[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class QueryJWTResponseMode(QueryResponseMode):
    name = "query.jwt"
    is_jwt = True


class FragmentJWTResponseMode(FragmentResponseMode):
    name = "fragment.jwt"
    is_jwt = True


class FormPostJWTResponseMode(FormPostResponseMode):
    name = "form_post.jwt"
    is_jwt = True


RESPONSE_MODES: dict[str, ResponseMode] = {
    mode.name: mode
    for mode in (
        QueryResponseMode(),
        FragmentResponseMode(),
        FormPostResponseMode(),
        QueryJWTResponseMode(),
        FragmentJWTResponseMode(),
        FormPostJWTResponseMode(),
    )
}


def carries_tokens(response_type: str) -> bool:
    """Whether ``response_type`` returns an access token or ID token (``token`` or ``id_token``)."""
    return "token" in (response_type or "").split() or "id_token" in (response_type or "").split()


def default_mode_name(response_type: str) -> str:
    """OAuth 2.0 Multiple Response Types 2.1: query for code and none, fragment otherwise."""
    return "fragment" if carries_tokens(response_type) else "query"


def jwt_mode_name(response_type: str) -> str:
    """JARM 2.3.4: what ``jwt`` means for ``response_type``."""
    return "fragment.jwt" if carries_tokens(response_type) else "query.jwt"


def jwt_twin(mode: ResponseMode, response_type: str, *, encrypted: bool) -> ResponseMode:
    """The JWT mode a refusal of a request for ``mode`` travels in: ``mode`` itself when it is one."""
    twin = mode.name if mode.is_jwt else f"{mode.plain_name}.jwt"
    if twin == "query.jwt" and carries_tokens(response_type) and not encrypted:
        # JARM 2.3.1: a token response type is answered in query.jwt only when encrypted.
        twin = "fragment.jwt"
    return RESPONSE_MODES[twin]


@dataclass(frozen=True)
class ClientPolicy:
    """What a client may ask for; built from its settings and the server's."""

    allowed_modes: Collection[str] = ()
    require_jarm: bool = False
    encrypted: bool = False


@dataclass(frozen=True)
class ModeDecision:
    """How to answer: the mode to deliver in, and the error to deliver instead of the response."""

    requested: str | None
    mode: ResponseMode
    refusal: Refusal | None = None
    #: The requested mode cannot be honoured at all (unknown, repeated): answered plainly.
    unsupported: bool = False


def _invalid(description: str) -> Refusal:
    return Refusal("invalid_request", description)


def resolve_response_mode(requested: Sequence[str], response_type: str, policy: ClientPolicy) -> ModeDecision:
    """Apply the response mode rules to the ``response_mode`` values of one request."""
    default = RESPONSE_MODES[default_mode_name(response_type)]
    supported = jarm_settings.response_modes
    if len(requested) > 1:
        # RFC 6749 3.1: request parameters must not be included more than once.
        return ModeDecision(None, default, _invalid("response_mode must not be repeated."), unsupported=True)
    name = requested[0] if requested else None
    if name is not None and (name not in supported or (name != "jwt" and name not in RESPONSE_MODES)):
        # Unknown or not offered: it cannot be honoured, so the error goes back in the plain default
        # mode of the response type (as the certified reference implementation does).
        return ModeDecision(name, default, _invalid("Unsupported response_mode."), unsupported=True)

    resolved = jwt_mode_name(response_type) if name == "jwt" else (name or default.name)
    mode = RESPONSE_MODES[resolved]

    def refuse(description: str) -> ModeDecision:
        # A supported mode refused by policy: the refusal itself travels as a JWT.
        return ModeDecision(name, jwt_twin(mode, response_type, encrypted=policy.encrypted), _invalid(description))

    if name is None and default.name not in supported:
        return refuse("This server requires response_mode=jwt.")
    if not mode.is_jwt and policy.require_jarm:
        return refuse("This client must use a JWT response mode (response_mode=jwt).")
    allowed = set(policy.allowed_modes)
    if "jwt" in allowed:
        allowed.add(jwt_mode_name(response_type))
    if allowed and not {name or resolved, resolved} & allowed:
        return refuse("This response_mode is not allowed for this client.")
    if resolved == "query" and carries_tokens(response_type):
        # OAuth 2.0 Multiple Response Types 2.1: tokens must not travel in the query.
        return ModeDecision(name, default, _invalid("response_mode=query cannot carry tokens."))
    if resolved == "query.jwt" and carries_tokens(response_type) and not policy.encrypted:
        # JARM 2.3.1: query.jwt must not carry tokens unless the response is encrypted.
        return refuse("response_mode=query.jwt cannot carry tokens unless the response is encrypted.")
    return ModeDecision(name, mode)
