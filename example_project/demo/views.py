"""The demo's pages: a home page with ready-made authorization links, and a callback that shows
what arrived.

The callback decodes the ``response`` JWT for display only. It verifies nothing: a relying party
must check the signature, ``iss``, ``aud`` and ``exp`` (JARM 2.4) before it trusts a single claim.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shlex
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import get_application_model

from django_jarm.models import ServerKey

from .clients import DEMO_CLIENTS, REDIRECT_URIS, DemoClient

#: Session key of the PKCE verifiers of the links shown, by ``state`` (newest last).
PENDING_SESSION_KEY = "jarm_demo_pending"
PENDING_MAX = 30


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """Render a demo page under a strict Content-Security-Policy (it shows untrusted values)."""
    nonce = secrets.token_urlsafe(18)
    response = render(request, template, {**context, "csp_nonce": nonce})
    response["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def redirect_uri_for(request: HttpRequest, application: Any) -> str:
    """The callback on the host the page was opened on, when the client has it registered."""
    here = request.build_absolute_uri(reverse("callback"))
    return here if application.redirect_uri_allowed(here) else REDIRECT_URIS[0]


def token_curl(request: HttpRequest, client: DemoClient, redirect_uri: str, verifier: str, code: str) -> str:
    """The curl command that redeems ``code`` at the token endpoint."""
    token_url = request.build_absolute_uri(reverse("oauth2_provider:token"))
    fields = [
        ("grant_type", "authorization_code"),
        ("client_id", client.client_id),
        ("client_secret", client.client_secret),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("code", code),
    ]
    lines = [f"curl -s {shlex.quote(token_url)}"]
    lines += [f"  --data-urlencode {shlex.quote(f'{name}={value}')}" for name, value in fields]
    return " \\\n".join(lines)


def home(request: HttpRequest) -> HttpResponse:
    applications = {
        app.client_id: app
        for app in get_application_model().objects.filter(client_id__in=[client.client_id for client in DEMO_CLIENTS])
    }
    pending: dict[str, Any] = dict(request.session.get(PENDING_SESSION_KEY, {}))
    rows = []
    for client in DEMO_CLIENTS:
        application = applications.get(client.client_id)
        links = []
        if application is not None:
            redirect_uri = redirect_uri_for(request, application)
            for link in client.links:
                verifier, challenge = pkce_pair()
                state = secrets.token_urlsafe(12)
                query = {
                    "client_id": client.client_id,
                    "response_type": client.response_type,
                    "response_mode": link.response_mode,
                    "redirect_uri": redirect_uri,
                    "scope": client.scope,
                    "state": state,
                    "nonce": secrets.token_urlsafe(12),
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                }
                pending[state] = {
                    "client_id": client.client_id,
                    "redirect_uri": redirect_uri,
                    "verifier": verifier,
                }
                links.append(
                    {
                        "link": link,
                        "url": f"{reverse('oauth2_provider:authorize')}?{urlencode(query)}",
                        "state": state,
                        "verifier": verifier,
                        "challenge": challenge,
                        "curl": token_curl(request, client, redirect_uri, verifier, "<code from the callback>"),
                    }
                )
        rows.append({"client": client, "application": application, "links": links})
    # Keep the verifiers of the links just shown, so the callback can print a ready curl command.
    request.session[PENDING_SESSION_KEY] = dict(list(pending.items())[-PENDING_MAX:])
    return page(
        request,
        "demo/home.html",
        {
            "rows": rows,
            "keys": ServerKey.objects.published(),
            "discovery_url": reverse("oauth2_provider:oidc-connect-discovery-info"),
            "jwks_url": reverse("oauth2_provider:jwks-info"),
        },
    )


def _b64url_json(part: str) -> str:
    padded = part + "=" * (-len(part) % 4)
    try:
        return json.dumps(json.loads(base64.urlsafe_b64decode(padded)), indent=2, ensure_ascii=False)
    except (ValueError, TypeError) as exc:
        return f"(not base64url-encoded JSON: {exc})"


def decode_for_display(token: str) -> dict[str, Any]:
    """Header and payload of a compact JWS (header only of a JWE), decoded; nothing is verified."""
    parts = token.split(".")
    if len(parts) == 3:
        return {"kind": "JWS", "header": _b64url_json(parts[0]), "payload": _b64url_json(parts[1])}
    if len(parts) == 5:
        return {"kind": "JWE", "header": _b64url_json(parts[0]), "payload": "(encrypted)"}
    return {"kind": "not a compact JWT", "header": "", "payload": ""}


def _claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


@csrf_exempt  # form_post.jwt delivers here with a cross-document POST that has no CSRF token.
def callback(request: HttpRequest) -> HttpResponse:
    query = list(request.GET.lists())
    form = list(request.POST.lists()) if request.method == "POST" else []
    received = dict(request.GET.items())
    received.update(request.POST.items() if request.method == "POST" else {})
    token = received.get("response", "")
    decoded = decode_for_display(token) if token else None
    values = _claims(token) if token else received
    pending = request.session.get(PENDING_SESSION_KEY, {})
    curl = ""
    code, state = values.get("code"), values.get("state")
    entry = pending.get(state) if isinstance(state, str) else None
    if isinstance(code, str) and entry:
        client = next((client for client in DEMO_CLIENTS if client.client_id == entry["client_id"]), None)
        if client is not None:
            curl = token_curl(request, client, entry["redirect_uri"], entry["verifier"], code)
    secrets_by_client = {client.client_id: client.client_secret for client in DEMO_CLIENTS}
    return page(
        request,
        "demo/callback.html",
        {
            "method": request.method,
            "query": query,
            "form": form,
            "token": token,
            "decoded": decoded,
            "curl": curl,
            # For the fragment script, which builds the curl command in the browser.
            "pending": {
                state: {**entry, "client_secret": secrets_by_client.get(entry["client_id"], "")}
                for state, entry in pending.items()
            },
            "token_url": request.build_absolute_uri(reverse("oauth2_provider:token")),
        },
    )
