"""DOT's dynamic client registration views (RFC 7591, RFC 7592), with the JARM client metadata.

DOT registers a client from ``redirect_uris``, ``client_name``, ``grant_types`` and
``token_endpoint_auth_method`` and ignores every other member. These views wrap DOT's: the JARM
members (JARM 3: ``authorization_signed_response_alg``, ``authorization_encrypted_response_alg``,
``authorization_encrypted_response_enc``, ``jwks``, ``jwks_uri``; FAPI 2.0 Message Signing 5.3.3:
``response_modes``) are taken out of the request before DOT reads it, validated through
``ClientSettings.full_clean()`` (the rules the admin applies) once DOT has saved the
application, and stored in the same transaction, so an error stores nothing at all.

``require_jarm`` is not client metadata: it is the operator's policy for a client, set in the
admin, and registration neither reads nor changes it. A client that wants only JWT responses
registers ``response_modes`` (the standard member) with JWT modes only.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings

from ._compat import DynamicClientRegistrationManagementView, DynamicClientRegistrationView, login_not_required
from .conf import (
    JWT_RESPONSE_MODES,
    SYMMETRIC_ENCRYPTION_ALGS,
    SYMMETRIC_SIGNING_ALGS,
    jarm_settings,
)
from .models import ClientSettings
from .validation import jwks_keys_problem, jwks_problem

#: The JARM client metadata registration accepts, with the value an omitted member stands for.
CLIENT_METADATA: dict[str, Any] = {
    "authorization_signed_response_alg": "",
    "authorization_encrypted_response_alg": "",
    "authorization_encrypted_response_enc": "",
    "jwks": None,
    "jwks_uri": "",
    "response_modes": [],
}

#: Members whose value is a string, each up to its model field's ``max_length``.
STRING_MEMBERS = (
    "authorization_signed_response_alg",
    "authorization_encrypted_response_alg",
    "authorization_encrypted_response_enc",
    "jwks_uri",
)

#: Plain response modes each profile leaves no use for. FAPI 2.0 Message Signing 5.4.1: code
#: with JARM only. FAPI 1.0 Advanced 5.2.2-2: code with JARM, or code id_token, which may not
#: travel in the query (OAuth 2.0 Multiple Response Types 5).
PROFILE_REFUSED_MODES: dict[str, tuple[str, ...]] = {
    "fapi1-advanced": ("query",),
    "fapi2-message-signing": ("query", "fragment", "form_post"),
}


# Discovery -------------------------------------------------------------------------------


def add_registration_endpoint(data: dict[str, Any], request: HttpRequest) -> None:
    """Put ``registration_endpoint`` (RFC 8414 2, OpenID Connect Discovery 3) in ``data``
    when registration is on, unless DOT already did."""
    if not oauth2_settings.DCR_ENABLED or "registration_endpoint" in data:
        return
    try:
        path = reverse("oauth2_provider:dcr-register")
    except NoReverseMatch:
        return
    issuer = oauth2_settings.OIDC_ISS_ENDPOINT
    if issuer:
        # The same origin as DOT's other endpoints behind a configured issuer.
        scheme, _, rest = str(issuer).partition("://")
        data["registration_endpoint"] = f"{scheme}://{rest.split('/', 1)[0]}{path}"
    else:
        data["registration_endpoint"] = request.build_absolute_uri(path)


# Reading the request ---------------------------------------------------------------------


class InvalidClientMetadata(Exception):
    """RFC 7591 3.2.2 ``invalid_client_metadata``; the message is the ``error_description``."""


def invalid_client_metadata(description: str) -> HttpResponse:
    body = {"error": "invalid_client_metadata", "error_description": error_description(description)}
    return no_store(JsonResponse(body, status=400))


def error_description(text: str) -> str:
    """``text`` in the characters RFC 6749 5.2 allows an ``error_description``: printable ASCII
    without ``"`` and ``\\`` (quotes become ``'``, anything else outside the set ``?``)."""
    text = text.replace('"', "'").replace("\\", "/")
    return "".join(char if " " <= char <= "~" else "?" for char in text)


def no_store(response: HttpResponse) -> HttpResponse:
    # RFC 6749 5.1 for responses that carry credentials (client_secret, registration token).
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def read_metadata(request: HttpRequest) -> dict[str, Any] | None:
    """The request's metadata object, or ``None`` when it is not one (DOT answers that).

    Raises :class:`InvalidClientMetadata` for what DOT would turn into a 500: JSON nested too
    deeply to parse, or a NUL character, which no database stores in text.
    """
    try:
        data = json.loads(request.body)
    except RecursionError as exc:
        raise InvalidClientMetadata("The request body is nested too deeply.") from exc
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if _holds_nul(data):
        raise InvalidClientMetadata("The client metadata holds a NUL character.")
    return data


def _holds_nul(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def hide_from_dot(request: HttpRequest, data: dict[str, Any]) -> None:
    """Give DOT the request without the JARM members: they are ours to judge and store.

    A client ``jwks`` is then judged by django_jarm's rules only, whatever DOT's own rules for
    one are: a set holding only encryption keys is exactly what a client that wants encrypted
    responses registers. (DOT 3.4.1 ignores ``jwks``.)
    """
    rest = {name: value for name, value in data.items() if name not in CLIENT_METADATA}
    request._body = json.dumps(rest).encode("utf-8")  # the body HttpRequest.body returns


def jarm_members(data: dict[str, Any]) -> dict[str, Any]:
    """The JARM members of ``data``, an omitted (or ``null``) member as its default.

    Raises :class:`InvalidClientMetadata` for a member of the wrong JSON type.
    """
    members: dict[str, Any] = {}
    problems: list[str] = []
    for name, default in CLIENT_METADATA.items():
        value = data.get(name)
        if value is None:
            members[name] = default
            continue
        if name in STRING_MEMBERS:
            limit = int(getattr(ClientSettings._meta.get_field(name), "max_length", 0) or 0)
            if not isinstance(value, str):
                problems.append(f"{name}: Must be a string.")
                continue
            if len(value) > limit:
                problems.append(f"{name}: Must be at most {limit} characters.")
                continue
        elif name == "jwks" and not isinstance(value, dict):
            problems.append('jwks: Must be a JSON object (a JWK Set, {"keys": [...]}).')
            continue
        elif name == "response_modes" and not (
            isinstance(value, list) and all(isinstance(mode, str) for mode in value)
        ):
            problems.append("response_modes: Must be an array of strings.")
            continue
        members[name] = value
    if problems:
        raise InvalidClientMetadata("; ".join(problems))
    return members


# Validating and storing ------------------------------------------------------------------


def hashed_secret_problems(settings: ClientSettings) -> dict[str, list[str]]:
    """The symmetric algorithms a client with a hashed secret asked for, by member.

    ``clean()`` refuses them too, with advice for the admin; this says it to the client.
    """
    problems: dict[str, list[str]] = {}
    application = settings.application
    if application.client_type != application.CLIENT_CONFIDENTIAL or not application.hash_client_secret:
        return problems  # clean() explains what a public client or an unhashed secret lacks
    enabled = {
        "authorization_signed_response_alg": [a for a in jarm_settings.signing_algs if a in SYMMETRIC_SIGNING_ALGS],
        "authorization_encrypted_response_alg": [
            a for a in jarm_settings.encryption_algs if a in SYMMETRIC_ENCRYPTION_ALGS
        ],
    }
    for name, symmetric in enabled.items():
        alg = getattr(settings, name)
        if alg in symmetric:  # a disabled one: clean() says it is not enabled
            # OpenID Connect Core 10.1, 10.2: the key is the raw secret, or derived from it.
            problems[name] = [
                f"{alg} needs the raw client secret as key material, and this server stores the "
                "secrets of registered clients hashed; choose an asymmetric algorithm."
            ]
    return problems


def registration_problems(settings: ClientSettings) -> dict[str, list[str]]:
    """Rules of registration beyond ``ClientSettings.clean()``, by member."""
    problems: dict[str, list[str]] = {}
    offered = jarm_settings.response_modes
    refused = PROFILE_REFUSED_MODES.get(jarm_settings.PROFILE or "", ())
    for mode in settings.response_modes if isinstance(settings.response_modes, list) else ():
        if mode in offered and mode in refused:
            problems.setdefault("response_modes", []).append(
                f"{mode} is not allowed under the {jarm_settings.PROFILE} profile; use "
                f"{', '.join(m for m in JWT_RESPONSE_MODES if m in offered)}."
            )
    if isinstance(settings.jwks, dict) and not jwks_problem(settings.jwks):
        problem = jwks_keys_problem(settings.jwks)
        if problem:
            problems["jwks"] = [problem]
    return problems


def describe(problems: dict[str, list[str]]) -> str:
    """One ``error_description``: each member, then what is wrong with it."""
    return "; ".join(f"{member}: {' '.join(messages)}" for member, messages in problems.items())


def validate(settings: ClientSettings) -> None:
    """Raise :class:`InvalidClientMetadata` unless ``settings`` passes ``full_clean()`` and the
    registration rules."""
    replaced = hashed_secret_problems(settings)
    problems = {**replaced}
    try:
        settings.full_clean()
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            if field not in replaced:
                problems.setdefault(field, []).extend(str(message) for message in messages)
    for field, messages in registration_problems(settings).items():
        problems.setdefault(field, []).extend(messages)
    if problems:
        raise InvalidClientMetadata(describe(problems))


def store(application: Any, members: dict[str, Any]) -> ClientSettings | None:
    """Validate ``members`` for ``application`` and save them; its settings row, or ``None``.

    Every member is set (an omitted one to its default: RFC 7592 2.2 replaces the whole
    registration); ``require_jarm``, the operator's, is kept. A client without a row and
    without a JARM member gets no row. Raises :class:`InvalidClientMetadata`, storing nothing.
    """
    settings = ClientSettings.objects.filter(application=application).first()
    if settings is None:
        if members == CLIENT_METADATA:
            return None
        settings = ClientSettings(application=application)
    for name, value in members.items():
        setattr(settings, name, value)
    validate(settings)
    settings.save()
    return settings


def client_metadata(settings: ClientSettings | None) -> dict[str, Any]:
    """The JARM members of a registration response: what the client will get (RFC 7591 3.2.1)."""
    data: dict[str, Any] = {
        "authorization_signed_response_alg": (
            settings.signing_alg if settings is not None else jarm_settings.default_signing_alg
        )
    }
    if settings is None:
        return data
    if settings.is_encrypted:
        data["authorization_encrypted_response_alg"] = settings.authorization_encrypted_response_alg
        data["authorization_encrypted_response_enc"] = settings.encryption_enc
    if settings.jwks:
        data["jwks"] = settings.jwks
    if settings.jwks_uri:
        data["jwks_uri"] = settings.jwks_uri
    if settings.response_modes:
        data["response_modes"] = settings.response_modes
    return data


def _with_metadata(response: HttpResponse, settings: ClientSettings | None) -> HttpResponse:
    body = json.loads(response.content)
    body.update(client_metadata(settings))
    return no_store(JsonResponse(body, status=response.status_code))


def _atomic() -> Any:
    return transaction.atomic(using=router.db_for_write(get_application_model()))


# Views -----------------------------------------------------------------------------------


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class JARMDynamicClientRegistrationView(DynamicClientRegistrationView):
    """RFC 7591 ``POST register/``: DOT's registration plus the JARM client metadata."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            data = read_metadata(request)
        except InvalidClientMetadata as exc:
            return invalid_client_metadata(str(exc))
        if data is None:
            return super().post(request, *args, **kwargs)  # DOT answers the malformed body
        hide_from_dot(request, data)
        with _atomic():
            response = super().post(request, *args, **kwargs)
            if response.status_code != 201:
                return response
            client_id = json.loads(response.content)["client_id"]
            application = get_application_model().objects.get(client_id=client_id)
            try:
                settings = store(application, jarm_members(data))
            except InvalidClientMetadata as exc:
                transaction.set_rollback(True)  # the application and its token go too
                return invalid_client_metadata(str(exc))
        return _with_metadata(response, settings)


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class JARMDynamicClientRegistrationManagementView(DynamicClientRegistrationManagementView):
    """RFC 7592 ``register/<client_id>/``: read and replace with the JARM client metadata.

    ``DELETE`` is DOT's: deleting the application deletes its settings row with it.
    """

    def get(self, request: HttpRequest, client_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, client_id, *args, **kwargs)
        if response.status_code != 200:
            return response
        settings = ClientSettings.objects.filter(application__client_id=client_id).first()
        return _with_metadata(response, settings)

    def put(self, request: HttpRequest, client_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            data = read_metadata(request)
        except InvalidClientMetadata as exc:
            return invalid_client_metadata(str(exc))
        if data is None:
            return super().put(request, client_id, *args, **kwargs)
        hide_from_dot(request, data)
        with _atomic():
            response = super().put(request, client_id, *args, **kwargs)
            if response.status_code != 200:
                return response
            application = get_application_model().objects.get(client_id=client_id)
            try:
                settings = store(application, jarm_members(data))
            except InvalidClientMetadata as exc:
                transaction.set_rollback(True)  # DOT's changes (and token rotation) go too
                return invalid_client_metadata(str(exc))
        return _with_metadata(response, settings)
