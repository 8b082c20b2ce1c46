"""The JARM authorization view, and the discovery, metadata and JWKS views.

:class:`JARMAuthorizationMixin` goes before DOT's ``AuthorizationView``. It captures the
request context where DOT validates (``validate_authorization_request``,
``create_authorization_response``, ``error_response``) and answers in ``redirect()``, the one
method every client-bound response passes through.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.db import DataError
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.views.generic import View
from oauth2_provider.models import get_application_model, get_grant_model
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import AuthorizationView, ConnectDiscoveryInfoView, OAuthServerMetadataView
from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error, MismatchingRedirectURIError

from . import tokens
from .client_keys import EncryptionKey, get_encryption_key
from .clients import client_settings_for
from .conf import jarm_settings, settings_epoch
from .exceptions import ConfigurationError, JARMError, ProtocolError, ResponseNotBuildable
from .forms import JARMAllowForm
from .keys import SigningKey, available_signing_algs, get_signing_key, key_state, published_jwks_json
from .models import ClientSettings
from .response_modes import RESPONSE_MODES, ClientPolicy, ModeDecision, Params, resolve_response_mode
from .signals import response_issued

try:  # DOT master moved its helpers to oauth2_provider.core.
    from oauth2_provider.core.exceptions import FatalClientError, OAuthToolkitError
except ImportError:  # pragma: no branch
    from oauth2_provider.exceptions import FatalClientError, OAuthToolkitError

try:
    from oauth2_provider.compat import login_not_required
except ImportError:  # pragma: no cover - DOT without the Django 5.1 shim

    def login_not_required(view: Any) -> Any:
        return view


logger = logging.getLogger(__name__)

#: What create_authorization_response() hands DOT instead of the response URL.
PENDING_RESPONSE = "urn:django-jarm:pending-response"
SERVER_ERROR_DESCRIPTION = "The authorization server cannot produce a signed response for this client."


_issuers: dict[tuple[Any, ...], str] = {}


def get_issuer(request: HttpRequest) -> str:
    """The issuer identifier: ``JARM["ISSUER"]``, else DOT's (OIDC issuer when OIDC is on)."""
    if jarm_settings.ISSUER:
        return str(jarm_settings.ISSUER)
    # DOT derives it from the request's scheme and host and a reverse(): the same answer for
    # the same (scheme, host, URLconf, settings), so it is computed once per combination.
    memo_key = (request.scheme, request.get_host(), getattr(request, "urlconf", None), settings_epoch())
    issuer = _issuers.get(memo_key)
    if issuer is None:
        if oauth2_settings.OIDC_ENABLED:
            issuer = str(oauth2_settings.oidc_issuer(request))
        else:
            issuer = str(oauth2_settings.oauth2_authorization_server_issuer(request))
        if len(_issuers) >= 64:
            _issuers.clear()
        _issuers[memo_key] = issuer
    return issuer


def client_settings_of(application: Any) -> ClientSettings | None:
    try:
        settings: ClientSettings = application.jarm
        return settings
    except ClientSettings.DoesNotExist:
        return None


def response_parameters(url: str, redirect_uri: str, *, keep_iss: bool = False) -> list[tuple[str, str]]:
    """The response parameters DOT put on ``url``: fragment and query, minus the redirect URI's own query.

    DOT's RFC 9207 ``iss`` parameter is dropped unless ``keep_iss``: in a JWT mode ``iss``
    lives inside the JWT (FAPI 2.0 Message Signing 5.4.1).
    """
    parts = urlsplit(url)
    own = parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)
    params: list[tuple[str, str]] = []
    for pair in parse_qsl(parts.query, keep_blank_values=True):
        if pair in own:
            own.remove(pair)
        else:
            params.append(pair)
    params.extend(parse_qsl(parts.fragment, keep_blank_values=True))
    if keep_iss:
        return params
    return [(name, value) for name, value in params if name != "iss"]


@functools.lru_cache(maxsize=1)
def _stored_parameter_limits() -> dict[str, int]:
    """Request parameters DOT stores, with the length of the column that receives them."""
    grant = get_grant_model()._meta
    application = get_application_model()._meta
    return {
        "client_id": application.get_field("client_id").max_length,
        **{name: grant.get_field(name).max_length for name in ("nonce", "code_challenge", "code_challenge_method")},
    }


def unstorable_parameter(request: HttpRequest) -> str | None:
    """Why DOT could not store this request's parameters (a NUL byte, too long), or ``None``.

    PostgreSQL refuses both, SQLite neither: without this check the same request would be a
    500 on one database and accepted on the other.
    """
    for source in (request.GET, request.POST):
        for name, values in source.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return "a parameter contains a NUL character"
    for name, limit in _stored_parameter_limits().items():
        if any(len(value) > limit for value in (*request.GET.getlist(name), *request.POST.getlist(name))):
            return f"{name} is longer than {limit} characters"
    return None


@dataclass
class AuthorizationContext:
    """What the response to one authorization request depends on, captured while DOT validates."""

    application: Any
    client_id: str
    redirect_uri: str
    response_type: str
    state: str | None
    decision: ModeDecision
    signing_key: SigningKey | None = None
    encryption_key: EncryptionKey | None = None
    #: The URL DOT built, kept out of DOT's hands (and logs) until redirect().
    pending_url: str = field(default="", repr=False)


class JARMAuthorizationMixin:
    """Answers DOT's authorization endpoint in the requested (JWT) response mode."""

    request: HttpRequest
    jarm_context: AuthorizationContext | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = unstorable_parameter(request)
        if problem is None:
            try:
                response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
                return response
            except DataError:
                problem = "a parameter the database cannot store"
        # Nothing is verified yet, so nothing is redirected: an error page, as for a bad client.
        logger.info("Authorization request refused: %s", problem)
        return self.render_to_response(  # type: ignore[attr-defined]
            {"error": {"error": "invalid_request", "description": f"Invalid request: {problem}."}}, status=400
        )

    def get_form_class(self) -> type[JARMAllowForm]:
        return JARMAllowForm

    def get_initial(self) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_initial()  # type: ignore[misc]
        initial["response_mode"] = self.request.GET.get("response_mode", "")
        return initial

    # Hooks -------------------------------------------------------------------------

    def get_requested_response_modes(self) -> list[str]:
        """The ``response_mode`` values of this request; more than one is an error.

        On the consent POST the form's hidden field is authoritative (under PAR the URL
        carries only ``request_uri``); a different value in the URL counts as a repeat.
        """
        request = self.request
        queried = [value for value in request.GET.getlist("response_mode") if value]
        if request.method == "POST" and "response_mode" in request.POST:
            posted = [value for value in request.POST.getlist("response_mode") if value]
            if queried and queried != posted:
                return posted + queried
            return posted
        return queried

    def get_client_policy(self, application: Any, settings: ClientSettings | None, response_type: str) -> ClientPolicy:
        """The response mode policy for ``application`` asking for ``response_type``."""
        require_jarm = bool(
            jarm_settings.REQUIRE_JARM
            or (settings is not None and settings.require_jarm)
            # FAPI 1.0 Advanced 5.2.2-2 and FAPI 2.0 Message Signing 5.4.1: the code flow uses JARM.
            or (jarm_settings.PROFILE is not None and response_type == "code")
        )
        return ClientPolicy(
            allowed_modes=tuple(settings.response_modes) if settings is not None else (),
            require_jarm=require_jarm,
            encrypted=settings is not None and settings.is_encrypted,
        )

    def get_signing_alg(self, application: Any, settings: ClientSettings | None) -> str:
        """The JWS algorithm of ``application``'s responses."""
        return settings.signing_alg if settings is not None else jarm_settings.default_signing_alg

    def get_response_claims(self, context: AuthorizationContext, params: Params) -> dict[str, Any]:
        """The JWT claims for ``params``; runs once per JWT response."""
        return tokens.response_claims(
            params,
            issuer=get_issuer(self.request),
            client_id=context.client_id,
            lifetime=int(jarm_settings.RESPONSE_LIFETIME),
            include_iat=bool(jarm_settings.INCLUDE_IAT),
        )

    # DOT's seams -------------------------------------------------------------------

    def validate_authorization_request(self, request: HttpRequest) -> tuple[Any, dict[str, Any]]:
        scopes, credentials = super().validate_authorization_request(request)  # type: ignore[misc]
        # oauthlib has verified the client and the redirect URI (fatal errors come first).
        self._bind(credentials)
        self._raise_for_refusal()
        return scopes, credentials

    def create_authorization_response(
        self, request: HttpRequest, scopes: Any, credentials: dict[str, Any], allow: bool
    ) -> Any:
        self._bind(credentials, verify_redirect_uri=True)
        self._raise_for_refusal()
        uri, headers, body, status = super().create_authorization_response(  # type: ignore[misc]
            request, scopes, credentials, allow
        )
        if self.jarm_context is not None:
            # DOT logs the URL it gets back ("Success url for the request: ..."), code and tokens
            # included. Keep the real one here; redirect() swaps it back in.
            self.jarm_context.pending_url = uri
            uri = PENDING_RESPONSE
        return uri, headers, body, status

    def error_response(self, error: Any, application: Any, **kwargs: Any) -> HttpResponse:
        if self.jarm_context is None and not isinstance(error, FatalClientError):
            oauthlib_error = error.oauthlib_error
            # oauthlib's own errors carry the client it verified (with the redirect URI) before
            # raising them. Errors DOT builds itself (invalid_target on the consent POST) carry
            # neither: the client comes from the request and its redirect URI is checked here.
            verified = bool(oauthlib_error.client_id)
            submitted = self.request.POST if self.request.method == "POST" else self.request.GET
            try:
                self._bind(
                    {
                        "client_id": oauthlib_error.client_id or submitted.get("client_id"),
                        "redirect_uri": oauthlib_error.redirect_uri,
                        "response_type": oauthlib_error.response_type or submitted.get("response_type"),
                        "state": oauthlib_error.state,
                    },
                    verify_redirect_uri=not verified,
                )
            except FatalClientError as fatal:
                error = fatal
            else:
                error = self._refusal() or error
        response: HttpResponse = super().error_response(error, application, **kwargs)  # type: ignore[misc]
        return response

    def redirect(self, redirect_to: str, application: Any) -> HttpResponse:
        context = self.jarm_context
        if context is None:
            if any(mode == "jwt" or mode.endswith(".jwt") for mode in self.get_requested_response_modes()):
                # Never a response in the clear to a request that asked for a JWT.
                return HttpResponse("The authorization response cannot be delivered.", status=400)
            plain: HttpResponse = super().redirect(redirect_to, application)  # type: ignore[misc]
            return plain
        if redirect_to == PENDING_RESPONSE:
            redirect_to, context.pending_url = context.pending_url, ""
        mode = context.decision.mode
        params = response_parameters(redirect_to, context.redirect_uri, keep_iss=not mode.is_jwt)
        return self.render_response(context, params)

    # Internals ---------------------------------------------------------------------

    def render_response(self, context: AuthorizationContext, params: Params) -> HttpResponse:
        """Deliver ``params`` in the decided mode, signed (and encrypted) when it is a JWT mode."""
        mode = context.decision.mode
        signing_key = context.signing_key if mode.is_jwt else None
        encryption_key = context.encryption_key if mode.is_jwt else None
        error = dict(params).get("error")
        if mode.is_jwt:
            try:
                if signing_key is None:
                    raise ConfigurationError("No signing key was resolved.")
                token = tokens.sign(self.get_response_claims(context, params), signing_key)
                if encryption_key is not None:
                    token = tokens.encrypt(token, encryption_key)
                params = [("response", token)]
            except JARMError as exc:
                logger.error(
                    "JARM response not built: client_id=%s mode=%s reason=%s", context.client_id, mode.name, exc
                )
                mode = RESPONSE_MODES[mode.plain_name]
                params = self._error_params(ResponseNotBuildable(SERVER_ERROR_DESCRIPTION), context.state)
                signing_key = encryption_key = None
                error = ResponseNotBuildable.error
        response = mode.render(
            self.request, context.redirect_uri, params, allowed_schemes=context.application.get_allowed_schemes()
        )
        logger.info(
            "Authorization response: client_id=%s mode=%s alg=%s kid=%s enc=%s error=%s",
            context.client_id,
            mode.name,
            signing_key.alg if signing_key else "-",
            signing_key.kid if signing_key else "-",
            encryption_key.alg if encryption_key else "-",
            error or "-",
        )
        response_issued.send(
            sender=type(self),
            request=self.request,
            client_id=context.client_id,
            response_mode=mode.name,
            alg=signing_key.alg if signing_key else None,
            kid=signing_key.kid if signing_key else None,
            encrypted=encryption_key is not None,
            error=error,
        )
        return response

    @staticmethod
    def _error_params(error: ProtocolError, state: str | None) -> list[tuple[str, str]]:
        params = [("error", error.error), ("error_description", error.description)]
        if state:
            params.append(("state", state))
        return params

    def _bind(self, credentials: dict[str, Any], *, verify_redirect_uri: bool = False) -> None:
        client_id = str(credentials.get("client_id") or "")
        redirect_uri = str(credentials.get("redirect_uri") or "")
        response_type = credentials.get("response_type") or ""
        state = credentials.get("state") or None
        current = self.jarm_context
        if current is not None and (
            current.client_id,
            current.redirect_uri,
            current.response_type,
            current.state,
        ) == (
            client_id,
            redirect_uri,
            response_type,
            state,
        ):
            return
        application = self._application(credentials, client_id)
        if application is None or not redirect_uri:
            raise FatalClientError(MismatchingRedirectURIError(description="Unknown client or redirect URI."))
        if verify_redirect_uri and not application.redirect_uri_allowed(redirect_uri):
            # DOT does not re-check the consent form's hidden redirect_uri when the user denies.
            raise FatalClientError(MismatchingRedirectURIError())
        settings = client_settings_for(application)
        decision = resolve_response_mode(
            self.get_requested_response_modes(),
            response_type,
            self.get_client_policy(application, settings, response_type),
        )
        signing_key = encryption_key = None
        if decision.mode.is_jwt:
            alg = self.get_signing_alg(application, settings)
            try:
                signing_key = get_signing_key(alg, application)
                if settings is not None and settings.is_encrypted:
                    encryption_key = get_encryption_key(application, settings)
            except ConfigurationError as exc:
                logger.error(
                    "JARM response cannot be built: client_id=%s mode=%s alg=%s reason=%s",
                    client_id,
                    decision.mode.name,
                    alg,
                    exc,
                )
                decision = ModeDecision(
                    decision.requested,
                    RESPONSE_MODES[decision.mode.plain_name],
                    ResponseNotBuildable(SERVER_ERROR_DESCRIPTION),
                )
        self.jarm_context = AuthorizationContext(
            application=application,
            client_id=client_id,
            redirect_uri=redirect_uri,
            response_type=response_type,
            state=state,
            decision=decision,
            signing_key=signing_key,
            encryption_key=encryption_key,
        )

    @staticmethod
    def _application(credentials: dict[str, Any], client_id: str) -> Any:
        """The client, as oauthlib already loaded it on the GET path, else from the database."""
        application_model = get_application_model()
        loaded = getattr(credentials.get("request"), "client", None)
        if isinstance(loaded, application_model) and loaded.client_id == client_id:
            return loaded
        return application_model.objects.filter(client_id=client_id).first()

    def _refusal(self) -> OAuthToolkitError | None:
        context = self.jarm_context
        if context is None or context.decision.error is None:
            return None
        error = context.decision.error
        logger.info(
            "Authorization request refused: client_id=%s error=%s reason=%s",
            context.client_id,
            error.error,
            error.description,
        )
        return OAuthToolkitError(
            CustomOAuth2Error(error=error.error, description=error.description, state=context.state),
            redirect_uri=context.redirect_uri,
        )

    def _raise_for_refusal(self) -> None:
        refusal = self._refusal()
        if refusal is not None:
            raise refusal


class JARMAuthorizationView(JARMAuthorizationMixin, AuthorizationView):
    """DOT's authorization view answering in JARM response modes."""


# Metadata ------------------------------------------------------------------------------


def _jwks_url(request: HttpRequest) -> str | None:
    try:
        path = reverse("oauth2_provider:jwks-info")
    except NoReverseMatch:
        return None
    if oauth2_settings.OIDC_ISS_ENDPOINT:
        parts = urlsplit(oauth2_settings.OIDC_ISS_ENDPOINT)
        return f"{parts.scheme}://{parts.netloc}{path}"
    return request.build_absolute_uri(path)


def jarm_metadata(request: HttpRequest) -> dict[str, Any]:
    """The JARM members of the discovery documents (JARM 4, OAuth 2.0 Multiple Response Types)."""
    return {
        "issuer": get_issuer(request),
        "response_modes_supported": jarm_settings.response_modes,
        "authorization_signing_alg_values_supported": available_signing_algs(),
        "authorization_encryption_alg_values_supported": jarm_settings.encryption_algs,
        "authorization_encryption_enc_values_supported": jarm_settings.encryption_encs,
    }


#: Built metadata documents: (view, URL, key state, settings epoch) -> (body, headers). Bounded:
#: the URL varies only with hosts Django accepts (ALLOWED_HOSTS).
_documents: dict[tuple[Any, ...], tuple[bytes, list[tuple[str, str]]]] = {}
_DOCUMENTS_MAX = 64


class _JARMMetadataMixin:
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        cache_key = (type(self), request.build_absolute_uri(request.path), key_state(), settings_epoch())
        cached = _documents.get(cache_key)
        if cached is None:
            response: HttpResponse = super().get(request, *args, **kwargs)  # type: ignore[misc]
            if response.status_code != 200:
                return response
            data = json.loads(response.content)
            data.update(jarm_metadata(request))
            if not data.get("jwks_uri"):
                data["jwks_uri"] = _jwks_url(request)
            headers = [
                (k, v) for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")
            ]
            cached = (json.dumps(data).encode("utf-8"), headers)
            if len(_documents) >= _DOCUMENTS_MAX:
                _documents.clear()
            _documents[cache_key] = cached
        body, headers = cached
        new = HttpResponse(body, content_type="application/json")
        for header, value in headers:
            new[header] = value
        return new


@method_decorator(login_not_required, name="dispatch")  # dispatch is overridden: keep DOT's marker
class JARMConnectDiscoveryInfoView(_JARMMetadataMixin, ConnectDiscoveryInfoView):
    """OpenID Provider metadata with the JARM members."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Without DOT's OIDC there is no OpenID Provider to describe: 404, as DOT answers with
        # DEBUG off (with DEBUG on DOT raises ImproperlyConfigured, a 500). RFC 8414 metadata at
        # /.well-known/oauth-authorization-server describes the server either way.
        if not oauth2_settings.OIDC_ENABLED:
            return HttpResponseNotFound(
                b'{"error": "not_found", "error_description": "OpenID Connect is not enabled on this server."}',
                content_type="application/json",
            )
        response: HttpResponse = super().dispatch(request, *args, **kwargs)
        return response


class JARMOAuthServerMetadataView(_JARMMetadataMixin, OAuthServerMetadataView):
    """RFC 8414 metadata with the JARM members."""


@method_decorator(login_not_required, name="dispatch")
class JARMJwksInfoView(View):
    """One JWK Set: DOT's OIDC keys and the published JARM keys, public members only."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = HttpResponse(published_jwks_json(), content_type="application/json")
        max_age = int(oauth2_settings.OIDC_JWKS_MAX_AGE_SECONDS)
        response["Access-Control-Allow-Origin"] = "*"
        response["Cache-Control"] = (
            f"public, max-age={max_age}, stale-while-revalidate={max_age}, stale-if-error={max_age}"
        )
        return response
