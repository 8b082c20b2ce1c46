"""DOT's seams, adapted to the core request path (:mod:`django_jarm.authorization`), and the
discovery, metadata and JWKS views.

:class:`JARMAuthorizationMixin` goes before DOT's ``AuthorizationView``. Where DOT has verified
the client and the redirect URI (``validate_authorization_request``,
``create_authorization_response``, or an error DOT hands to ``error_response``) it asks the core
for the :class:`~django_jarm.authorization.ResponsePlan`; a planned refusal becomes DOT's error
type there, and only there. ``redirect()``, the one method every client-bound response passes
through, hands DOT's parameters to :func:`~django_jarm.authorization.deliver`.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

from django.db import DataError
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.views.generic import View
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error, MismatchingRedirectURIError

from . import authorization, par, request_checks, state
from ._compat import (
    AuthorizationView,
    ConnectDiscoveryInfoView,
    FatalClientError,
    OAuthServerMetadataView,
    OAuthToolkitError,
    login_not_required,
)
from .authorization import AuthorizationRequest, ResponsePlan, get_issuer
from .conf import jarm_settings
from .exceptions import Refusal
from .forms import JARMAllowForm
from .keys import available_signing_algs, published_jwks_json
from .profiles import discovery_overrides
from .registration import add_registration_endpoint

logger = logging.getLogger(__name__)

#: What create_authorization_response() hands DOT instead of the response URL, which DOT would
#: log at DEBUG with the code and tokens in it; redirect() swaps the real one back in.
PENDING_RESPONSE = "urn:django-jarm:pending-response"


class JARMAuthorizationMixin:
    """Answers DOT's authorization endpoint in the requested (JWT) response mode."""

    request: HttpRequest
    #: The core's decision for this request, made once where DOT has verified the client.
    jarm_plan: ResponsePlan | None = None
    #: The URL DOT built, kept out of DOT's hands (and logs) until redirect().
    _jarm_pending_url: str = ""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = par.unpushed_request_refusal(request) or request_checks.authorization_request_problem(request)
        if problem is None:
            try:
                response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
                return response
            except DataError:
                problem = "a parameter the database cannot store"
        # Nothing is verified yet, so nothing is redirected: an error page, as for a bad client.
        logger.info("Authorization request refused: %s", problem)
        description = problem.description if isinstance(problem, Refusal) else f"Invalid request: {problem}."
        return self.render_to_response(  # type: ignore[attr-defined]
            {"error": {"error": "invalid_request", "description": description}}, status=400
        )

    def get_form_class(self) -> type[JARMAllowForm]:
        return JARMAllowForm

    def get_initial(self) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_initial()  # type: ignore[misc]
        initial["response_mode"] = self.request.GET.get("response_mode", "")
        return initial

    def get_requested_response_modes(self) -> list[str]:
        """The ``response_mode`` values of this request; more than one is an error.

        On the consent POST the form's hidden field is authoritative (under PAR the URL
        carries only ``request_uri``); a different value in the URL counts as a repeat, except
        for a pushed request, whose URL parameters are ignored (:mod:`django_jarm.par`).
        """
        return par.requested_response_modes(self.request)

    # DOT's seams -------------------------------------------------------------------------------

    def validate_authorization_request(self, request: HttpRequest) -> tuple[Any, dict[str, Any]]:
        scopes, credentials = super().validate_authorization_request(request)  # type: ignore[misc]
        # oauthlib has verified the client and the redirect URI (fatal errors come first).
        self._plan_or_refuse(credentials)
        return scopes, credentials

    def create_authorization_response(
        self, request: HttpRequest, scopes: Any, credentials: dict[str, Any], allow: bool
    ) -> Any:
        # The consent POST arrives here first; DOT does not re-check its hidden redirect_uri on deny.
        self._plan_or_refuse(credentials, verify_redirect_uri=True)
        loaded = getattr(credentials.get("request"), "client", None)
        if self.jarm_plan is not None and loaded is self.jarm_plan.application and "client" not in credentials:
            # On the GET path oauthlib validates the request a second time here and, through
            # DOT's validator, loads the client a third time. Handing it the client oauthlib
            # loaded (and DOT refreshed) earlier in this same request saves that query; DOT's
            # _load_application still checks it (same client_id, is_usable). The consent POST
            # has no such client and loads its own, as before.
            credentials["client"] = loaded
        uri, headers, body, status = super().create_authorization_response(  # type: ignore[misc]
            request, scopes, credentials, allow
        )
        self._jarm_pending_url = uri
        return PENDING_RESPONSE, headers, body, status

    def error_response(self, error: Any, application: Any, **kwargs: Any) -> HttpResponse:
        if self.jarm_plan is None and not isinstance(error, FatalClientError):
            # An error DOT raised before we could plan (a GET validation error, invalid_target on
            # the consent POST): plan from what the error knows, then answer our refusal, if any,
            # in place of DOT's error.
            oauthlib_error = error.oauthlib_error
            submitted = self.request.POST if self.request.method == "POST" else self.request.GET
            credentials = {
                "client_id": oauthlib_error.client_id or submitted.get("client_id"),
                "redirect_uri": oauthlib_error.redirect_uri,
                "response_type": oauthlib_error.response_type or submitted.get("response_type"),
                "state": oauthlib_error.state,
            }
            try:
                # oauthlib's own errors carry the client it verified; DOT's own ones do not.
                refusal = self._plan(credentials, verify_redirect_uri=not oauthlib_error.client_id)
            except FatalClientError as fatal:
                error = fatal
            else:
                error = refusal or error
        response: HttpResponse = super().error_response(error, application, **kwargs)  # type: ignore[misc]
        return response

    def redirect(self, redirect_to: str, application: Any) -> HttpResponse:
        plan = self.jarm_plan
        if plan is None:
            if any(mode == "jwt" or mode.endswith(".jwt") for mode in self.get_requested_response_modes()):
                # Never a response in the clear to a request that asked for a JWT.
                return HttpResponse("The authorization response cannot be delivered.", status=400)
            plain: HttpResponse = super().redirect(redirect_to, application)  # type: ignore[misc]
            return plain
        if redirect_to == PENDING_RESPONSE:
            redirect_to, self._jarm_pending_url = self._jarm_pending_url, ""
        params = authorization.response_parameters(
            redirect_to, plan.request.redirect_uri, keep_iss=not plan.mode.is_jwt
        )
        return authorization.deliver(self.request, plan, params)

    # Adapting ----------------------------------------------------------------------------------

    def _plan_or_refuse(self, credentials: dict[str, Any], *, verify_redirect_uri: bool = False) -> None:
        refusal = self._plan(credentials, verify_redirect_uri=verify_redirect_uri)
        if refusal is not None:
            raise refusal

    def _plan(self, credentials: dict[str, Any], *, verify_redirect_uri: bool = False) -> OAuthToolkitError | None:
        """Plan this request's response (once), and return its refusal as DOT's error type."""
        if self.jarm_plan is None:
            client_id = str(credentials.get("client_id") or "")
            redirect_uri = str(credentials.get("redirect_uri") or "")
            application = self._application(credentials, client_id)
            if application is None or not redirect_uri:
                raise FatalClientError(MismatchingRedirectURIError(description="Unknown client or redirect URI."))
            if verify_redirect_uri and not application.redirect_uri_allowed(redirect_uri):
                raise FatalClientError(MismatchingRedirectURIError())
            submitted = self.request.POST if self.request.method == "POST" else self.request.GET
            request_uri = self.request.GET.get("request_uri") or submitted.get("request_uri") or ""
            self.jarm_plan = authorization.plan(
                self.request,
                application,
                AuthorizationRequest(
                    client_id=client_id,
                    redirect_uri=redirect_uri,
                    response_type=str(credentials.get("response_type") or ""),
                    state=credentials.get("state") or None,
                    response_modes=tuple(self.get_requested_response_modes()),
                    request_object="request" in self.request.GET or "request" in submitted,
                    # A pushed request's URI only where this server serves PAR; elsewhere it is
                    # just a request_uri, which is not supported.
                    request_uri=bool(request_uri)
                    and not (par.par_enabled() and request_uri.startswith(par.REQUEST_URI_PREFIX)),
                    # As oauthlib read them when it did (the credentials), else as submitted.
                    code_challenge=credentials.get("code_challenge", submitted.get("code_challenge")),
                    code_challenge_method=credentials.get(
                        "code_challenge_method", submitted.get("code_challenge_method")
                    ),
                ),
            )
        refusal = self.jarm_plan.refusal
        if refusal is None:
            return None
        logger.info(
            "Authorization request refused: client_id=%s error=%s reason=%s",
            self.jarm_plan.request.client_id,
            refusal.error,
            refusal.description,
        )
        # The one place a refusal becomes DOT's error type; DOT then answers it through redirect().
        return OAuthToolkitError(
            CustomOAuth2Error(error=refusal.error, description=refusal.description, state=self.jarm_plan.request.state),
            redirect_uri=self.jarm_plan.request.redirect_uri,
        )

    @staticmethod
    def _application(credentials: dict[str, Any], client_id: str) -> Any:
        """The client, as oauthlib already loaded it on the GET path, else from the database."""
        application_model = get_application_model()
        loaded = getattr(credentials.get("request"), "client", None)
        if isinstance(loaded, application_model) and loaded.client_id == client_id:
            return loaded
        return application_model.objects.filter(client_id=client_id).first()


class JARMAuthorizationView(JARMAuthorizationMixin, AuthorizationView):
    """DOT's authorization view answering in JARM response modes."""


class JARMPushedAuthorizationRequestMixin:
    """Goes before DOT's PushedAuthorizationRequestView (RFC 9126 2.1, where DOT has PAR).

    A parameter the database cannot store (a NUL byte, too long for its column) is refused
    with a JSON error before DOT stores the pushed request: never a 500 on PostgreSQL, and
    never a request URI that could only fail later at the authorization endpoint.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = request_checks.unstorable_parameter(request)
        if problem is not None:
            logger.info("Pushed authorization request refused: %s", problem)
            refused = JsonResponse(
                {"error": "invalid_request", "error_description": f"Invalid request: {problem}."}, status=400
            )
            refused["Cache-Control"] = "no-cache, no-store"  # RFC 9126 2.3
            return refused
        response: HttpResponse = super().post(request, *args, **kwargs)  # type: ignore[misc]
        return response


def pushed_authorization_request_view() -> Any:
    """DOT's PAR endpoint view with :class:`JARMPushedAuthorizationRequestMixin`; DOTs with PAR only."""
    from ._compat import PushedAuthorizationRequestView

    class JARMPushedAuthorizationRequestView(JARMPushedAuthorizationRequestMixin, PushedAuthorizationRequestView):
        """DOT's pushed authorization request endpoint."""

    return JARMPushedAuthorizationRequestView.as_view()


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
        # OpenID Connect Discovery 3: absent means true, and request objects are not supported.
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        **par.par_metadata(request),
    }


class _JARMMetadataMixin:
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # One document per URL (hosts are bounded by ALLOWED_HOSTS), kept in the state snapshot.
        key = (type(self).__name__, request.build_absolute_uri(request.path))
        cached = state.current().recall("metadata", key)
        if cached is None:
            response: HttpResponse = super().get(request, *args, **kwargs)  # type: ignore[misc]
            if response.status_code != 200:
                return response
            data = json.loads(response.content)
            data.update(jarm_metadata(request))
            add_registration_endpoint(data, request)
            data = discovery_overrides(jarm_settings.profile, data)
            if not data.get("jwks_uri"):
                data["jwks_uri"] = _jwks_url(request)
            headers = [
                (k, v) for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")
            ]
            cached = (json.dumps(data).encode("utf-8"), headers)
            state.current().remember("metadata", key, cached)
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
        response["Access-Control-Allow-Origin"] = "*"
        # The key lifecycle waits for this window (keys.activation_delay, keys.retirement_delay);
        # no stale-while-revalidate / stale-if-error, which would stretch it unboundedly.
        response["Cache-Control"] = f"public, max-age={jarm_settings.jwks_max_age}"
        return response
