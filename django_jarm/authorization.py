"""The request path of one authorization response: :func:`plan`, then :func:`deliver`.

``plan`` runs once DOT/oauthlib have verified the client and the redirect URI, before any code
or token exists. It decides everything the response depends on: the response mode (``jwt``
resolved, client policy applied), the signing key and the encryption key, the issuer, or a
:class:`~django_jarm.exceptions.Refusal` to answer instead. ``deliver`` turns the parameters DOT
produced (or the refusal's) into the HTTP response in that mode: signed, and encrypted when the
client asked for it.

The view (:mod:`django_jarm.views`), the admin preview and the conformance self-test all call
these two, through the planner named in ``JARM["RESPONSE_PLANNER"]``, so what the admin previews
is what the endpoint sends.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from oauth2_provider.models import get_access_token_model, get_grant_model
from oauth2_provider.settings import oauth2_settings

from . import state, tokens
from .client_keys import EncryptionKey, settings_encryption_key
from .conf import jarm_settings
from .exceptions import SERVER_ERROR, JARMError, KeyUnavailable, Refusal
from .keys import SigningKey, get_signing_key
from .models import ClientSettings
from .profiles import request_refusal
from .response_modes import RESPONSE_MODES, ClientPolicy, ModeDecision, ResponseMode, jwt_twin, resolve_response_mode
from .signals import response_issued

logger = logging.getLogger(__name__)

Params = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class AuthorizationRequest:
    """What the response depends on, taken from the request DOT/oauthlib verified."""

    client_id: str
    redirect_uri: str
    response_type: str
    state: str | None
    #: Every ``response_mode`` value the request carried (more than one is an error).
    response_modes: tuple[str, ...] = ()
    #: Whether the request carried ``request`` / a non-PAR ``request_uri`` (JAR, not supported).
    request_object: bool = False
    request_uri: bool = False
    #: PKCE (RFC 7636), checked against the FAPI profile.
    code_challenge: str | None = None
    code_challenge_method: str | None = None


@dataclass(frozen=True)
class ResponsePlan:
    """Everything one authorization response is built from, decided before any code exists."""

    request: AuthorizationRequest
    application: Any = field(repr=False)
    settings: ClientSettings | None = field(repr=False)
    #: The mode the response is delivered in.
    mode: ResponseMode
    issuer: str
    #: Answer this error instead of DOT's response (a policy refusal, or ``server_error``).
    refusal: Refusal | None = None
    signing_key: SigningKey | None = field(default=None, repr=False)
    encryption_key: EncryptionKey | None = field(default=None, repr=False)
    #: Why no JWT can be built, for the log and the admin (never sent to the client).
    problem: str = ""


class ResponsePlanner:
    """The decisions of one authorization response, as overridable hooks.

    Subclass it and name the subclass in ``JARM["RESPONSE_PLANNER"]``: the endpoint, the admin
    preview and the self-test then all use your hooks.
    """

    def get_client_policy(self, application: Any, settings: ClientSettings | None, response_type: str) -> ClientPolicy:
        """The response mode policy for ``application`` asking for ``response_type``."""
        require_jarm = bool(
            jarm_settings.REQUIRE_JARM
            or (settings is not None and settings.require_jarm)
            # FAPI 1.0 Advanced 5.2.2-2 (code) and FAPI 2.0 Message Signing 5.4.1 (everything) use JARM.
            or jarm_settings.profile.requires_jwt_mode(response_type)
        )
        return ClientPolicy(
            allowed_modes=tuple(settings.response_modes) if settings is not None else (),
            require_jarm=require_jarm,
            encrypted=settings is not None and settings.is_encrypted,
        )

    def get_signing_alg(self, application: Any, settings: ClientSettings | None) -> str:
        """The JWS algorithm of ``application``'s responses."""
        return settings.signing_alg if settings is not None else jarm_settings.default_signing_alg

    def get_response_claims(self, plan: ResponsePlan, params: Params) -> dict[str, Any]:
        """The JWT claims for ``params``; runs once per JWT response."""
        return tokens.response_claims(
            params,
            issuer=plan.issuer,
            client_id=plan.request.client_id,
            lifetime=jarm_settings.response_lifetime,
            include_iat=jarm_settings.INCLUDE_IAT,
        )

    def get_refusal(self, request: AuthorizationRequest) -> Refusal | None:
        """A refusal of a request whose mode could be honoured, or ``None``."""
        # OpenID Connect Core 6: a server without request object support says so.
        if request.request_object:
            return Refusal("request_not_supported", "Request objects (the request parameter) are not supported.")
        if request.request_uri:
            return Refusal("request_uri_not_supported", "request_uri is supported only for pushed requests (PAR).")
        return None

    # The path -----------------------------------------------------------------------------------

    def plan(self, http_request: HttpRequest, application: Any, request: AuthorizationRequest) -> ResponsePlan:
        """Decide the response to ``request`` from the verified ``application``."""
        settings = state.client_settings(application)
        policy = self.get_client_policy(application, settings, request.response_type)
        decision = apply_profile(
            resolve_response_mode(request.response_modes, request.response_type, policy), request, policy
        )
        mode, refusal = decision.mode, decision.refusal or self.get_refusal(request)
        decided = {
            "request": request,
            "application": application,
            "settings": settings,
            "issuer": get_issuer(http_request),
        }
        if not mode.is_jwt:
            return ResponsePlan(**decided, mode=mode, refusal=refusal)
        alg = self.get_signing_alg(application, settings)
        try:
            signing_key = get_signing_key(alg, application)
            encryption_key = None
            if settings is not None and settings.is_encrypted:
                encryption_key = settings_encryption_key(application, settings)
        except KeyUnavailable as exc:
            # DESIGN 2: no JWT can be built, so server_error in the plain twin mode, before any
            # code exists. Never an unsigned success.
            logger.error(
                "JARM response cannot be built: client_id=%s mode=%s alg=%s reason=%s",
                request.client_id,
                mode.name,
                alg,
                exc,
            )
            plain = RESPONSE_MODES[mode.plain_name]
            return ResponsePlan(**decided, mode=plain, refusal=SERVER_ERROR, problem=str(exc))
        return ResponsePlan(
            **decided, mode=mode, refusal=refusal, signing_key=signing_key, encryption_key=encryption_key
        )

    def sign(self, plan: ResponsePlan, params: Params) -> str:
        """The signed response JWT (JWS) for ``params``."""
        if plan.signing_key is None:
            raise KeyUnavailable("No signing key was planned.")
        return tokens.sign(self.get_response_claims(plan, params), plan.signing_key)

    def response_jwt(self, plan: ResponsePlan, params: Params) -> str:
        """The value of the ``response`` parameter: signed, then encrypted when planned (JARM 2.2)."""
        token = self.sign(plan, params)
        if plan.encryption_key is not None:
            token = tokens.encrypt(token, plan.encryption_key)
        return token

    def deliver(self, http_request: HttpRequest, plan: ResponsePlan, params: Params) -> HttpResponse:
        """The HTTP response carrying ``params`` in the planned mode."""
        mode, error = plan.mode, dict(params).get("error")
        signing_key, encryption_key = plan.signing_key, plan.encryption_key
        if mode.is_jwt:
            try:
                params = [("response", self.response_jwt(plan, params))]
            except JARMError as exc:
                # A late failure: DOT has already issued what params carry. It is revoked, and the
                # client gets server_error in the plain twin mode: never the grant in the clear.
                logger.error(
                    "JARM response not built: client_id=%s mode=%s reason=%s", plan.request.client_id, mode.name, exc
                )
                revoke_issued(params)
                mode, error = RESPONSE_MODES[mode.plain_name], SERVER_ERROR.error
                params = SERVER_ERROR.params(plan.request.state)
                signing_key = encryption_key = None
        response = mode.render(
            http_request,
            plan.request.redirect_uri,
            params,
            allowed_schemes=plan.application.get_allowed_schemes(),
        )
        logger.info(
            "Authorization response: client_id=%s mode=%s alg=%s kid=%s enc=%s error=%s",
            plan.request.client_id,
            mode.name,
            signing_key.alg if signing_key else "-",
            signing_key.kid if signing_key else "-",
            encryption_key.alg if encryption_key else "-",
            error or "-",
        )
        # A receiver that fails must not turn a response whose code exists into a 500: Django
        # logs its exception (logger django.dispatch), and the response goes out.
        response_issued.send_robust(
            sender=type(self),
            request=http_request,
            client_id=plan.request.client_id,
            response_mode=mode.name,
            alg=signing_key.alg if signing_key else None,
            kid=signing_key.kid if signing_key else None,
            encrypted=encryption_key is not None,
            error=error,
        )
        return response


def apply_profile(decision: ModeDecision, request: AuthorizationRequest, policy: ClientPolicy) -> ModeDecision:
    """``decision``, or the refusal the FAPI profile (``JARM["PROFILE"]``) gives this request instead.

    The refusal travels like any policy refusal: in the requested JWT mode, or in the JWT twin
    of a plain mode when the profile requires JARM for this response type; never with a token.
    A mode that cannot be honoured at all (unknown, repeated) keeps its plain-mode answer.
    """
    if decision.unsupported:
        return decision
    profile = jarm_settings.profile
    refused = request_refusal(
        profile,
        response_type=request.response_type,
        response_mode_resolved=decision.mode.name,
        code_challenge=request.code_challenge,
        code_challenge_method=request.code_challenge_method,
    )
    if refused is None:
        return decision
    mode = decision.mode
    if not mode.is_jwt and profile.requires_jwt_mode(request.response_type):
        mode = jwt_twin(mode, request.response_type, encrypted=policy.encrypted)
    return ModeDecision(decision.requested, mode, Refusal(refused.error, refused.description))


@functools.lru_cache(maxsize=4)
def _planner_class(path: str) -> type[ResponsePlanner]:
    planner: type[ResponsePlanner] = import_string(path)
    return planner


def get_planner() -> ResponsePlanner:
    """The planner named in ``JARM["RESPONSE_PLANNER"]``."""
    return _planner_class(jarm_settings.RESPONSE_PLANNER)()


def plan(http_request: HttpRequest, application: Any, request: AuthorizationRequest) -> ResponsePlan:
    """Decide the response to ``request`` (see :meth:`ResponsePlanner.plan`)."""
    return get_planner().plan(http_request, application, request)


def deliver(http_request: HttpRequest, plan: ResponsePlan, params: Params) -> HttpResponse:
    """Build the response carrying ``params`` (see :meth:`ResponsePlanner.deliver`)."""
    return get_planner().deliver(http_request, plan, params)


# Helpers the adapters share -------------------------------------------------------------------


def get_issuer(request: HttpRequest) -> str:
    """The issuer identifier: ``JARM["ISSUER"]``, else DOT's (its OIDC issuer when OIDC is on)."""
    if jarm_settings.ISSUER:
        return jarm_settings.ISSUER
    # DOT derives it from the request's scheme and host and a reverse(): the same answer for the
    # same scheme, host and URLconf. Keyed by get_host(), which validates the host against
    # ALLOWED_HOSTS (so the memo holds only allowed hosts) and reads exactly the headers the
    # settings say (X-Forwarded-Host and -Port included).
    key = (request.scheme, request.get_host(), getattr(request, "urlconf", None))
    return state.current().memo("issuer", key, lambda: dot_issuer(request))


def dot_issuer(request: HttpRequest) -> str:
    """DOT's issuer for ``request``: the one in its ID tokens and RFC 9207 ``iss``."""
    if oauth2_settings.OIDC_ENABLED:
        return str(oauth2_settings.oidc_issuer(request))
    return str(oauth2_settings.oauth2_authorization_server_issuer(request))


def response_parameters(url: str, redirect_uri: str, *, keep_iss: bool = False) -> list[tuple[str, str]]:
    """The response parameters DOT put on ``url``: fragment and query, minus the redirect URI's own query.

    DOT's RFC 9207 ``iss`` parameter is dropped unless ``keep_iss``: in a JWT mode ``iss`` lives
    inside the JWT (FAPI 2.0 Message Signing 5.4.1).
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


def revoke_issued(params: Params) -> None:
    """Delete the code and tokens in ``params``: they were issued but can never be delivered."""
    values = dict(params)
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the request's transaction usable
            _delete_issued(values)
    except Exception as exc:  # the answer is server_error either way; never a 500 on top of it
        logger.error("Revoking an undeliverable grant failed: %s", type(exc).__name__)


def _delete_issued(values: dict[str, str]) -> None:
    if values.get("code"):
        get_grant_model().objects.filter(code=values["code"]).delete()
    if values.get("access_token"):
        checksum = hashlib.sha256(values["access_token"].encode("utf-8")).hexdigest()
        get_access_token_model().objects.filter(token_checksum=checksum).delete()
