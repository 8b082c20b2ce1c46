"""The demo relying party's pages: start a flow, receive the response, show every check.

* ``home``: the demo clients, one button per flow.
* ``register`` (POST): registers a new client at the server's ``registration_endpoint``
  (RFC 7591) with the JARM client metadata, keeps it in the session and shows the request and
  the answer (``registration``), with a button that starts a JARM flow with that client.
* ``start`` (POST): state, nonce and a PKCE verifier, kept in the session; then a redirect to
  the authorization endpoint read from discovery.
* ``callback``: receives the response in the query, in a form POST (``form_post.jwt``) or in
  the URL fragment (the page's script posts ``location.hash`` back here); verifies it (see
  :mod:`.verify`), redeems the code at the token endpoint, stores the outcome in the session
  and redirects to ``result``, so that the response leaves the address bar and a reload does
  not submit it twice.

The relying party talks to the authorization server over HTTP only, and verifies with joserfc:
it shares no code with django_jarm.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import keys, transport
from .clients import (
    CALLBACK_ORIGINS,
    CLIENTS_BY_ID,
    DEMO_CLIENTS,
    DemoClient,
    Flow,
    dynamic_registration_request,
    registered_client,
)
from .verify import FAIL, PASS, Check, Expectation, check_id_token, pretty, redact, shorten, verify_response

PENDING_SESSION_KEY = "relying_party_pending"
RESULTS_SESSION_KEY = "relying_party_results"
REGISTRATIONS_SESSION_KEY = "relying_party_registrations"
MAX_REGISTRATIONS = 5
MAX_PENDING = 20
MAX_RESULTS = 10


# Pages ------------------------------------------------------------------------------------


def page(request: HttpRequest, template: str, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    """Render under a strict Content-Security-Policy: these pages show values from the network."""
    nonce = secrets.token_urlsafe(18)
    response = render(request, template, {**context, "csp_nonce": nonce}, status=status)
    response["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    # Not no-referrer: browsers then send "Origin: null" with form POSTs, which CSRF checks refuse.
    # same-origin keeps URLs (a callback URL carries the response) from other sites all the same.
    response["Referrer-Policy"] = "same-origin"
    response["Cache-Control"] = "no-store"
    return response


# The authorization server, as a client sees it --------------------------------------------


def expected_issuer(request: HttpRequest) -> str:
    """The issuer this relying party trusts: the demo's own origin plus ``ISSUER_PATH``."""
    return f"{request.scheme}://{request.get_host()}{settings.RELYING_PARTY['ISSUER_PATH']}"


def discover(request: HttpRequest) -> dict[str, Any]:
    """The discovery document (OpenID Connect Discovery 4), checked against the expected issuer."""
    issuer = expected_issuer(request)
    document = transport.get_json(f"{issuer}/.well-known/openid-configuration")
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise transport.TransportError(
            f"the discovery document names issuer {document.get('issuer')!r}, expected {issuer!r}"
        )
    return document


def server_jwks(discovery: dict[str, Any]) -> dict[str, Any]:
    jwks = transport.get_json(discovery["jwks_uri"])
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise transport.TransportError("the jwks_uri did not answer a JWK Set")
    return jwks


# Home and start ---------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    server: dict[str, Any] = {"issuer": expected_issuer(request)}
    try:
        discovery = discover(request)
        server.update(discovery=discovery, jwks=server_jwks(discovery))
    except transport.TransportError as error:
        server["problem"] = str(error)
    recent = list(request.session.get(RESULTS_SESSION_KEY, {}).values())[::-1]
    return page(
        request,
        "relying_party/home.html",
        {
            "clients": DEMO_CLIENTS,
            "server": server,
            "relying_party_kid": keys.decryption_key().kid,
            "recent": recent[:5],
            "origin_ok": callback_origin_ok(request),
        },
    )


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def client_and_flow(request: HttpRequest, name: str, slug: str | None = None) -> tuple[DemoClient, Flow | None]:
    """The client ``name`` stands for in a URL (a demo client, or one this session registered)."""
    client = CLIENTS_BY_ID.get(name)
    if client is None:
        registration = request.session.get(REGISTRATIONS_SESSION_KEY, {}).get(name)
        if registration is None or not registered(registration):
            raise Http404("No such demo client.")
        client = registered_client(name, registration["answer"])
    flow = client.flow(slug) if slug is not None else None
    if slug is not None and flow is None:
        raise Http404("No such flow.")
    return client, flow


@require_POST
def start(request: HttpRequest, client_id: str, slug: str) -> HttpResponse:
    client, flow = client_and_flow(request, client_id, slug)
    assert flow is not None
    try:
        authorization_endpoint = discover(request)["authorization_endpoint"]
    except (transport.TransportError, KeyError) as error:
        return page(request, "relying_party/problem.html", {"problem": f"Discovery failed: {error}"})
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    redirect_uri = request.build_absolute_uri(client.callback_path)
    pending = dict(request.session.get(PENDING_SESSION_KEY, {}))
    pending[state] = {
        "client_id": client.client_id,
        "flow": flow.slug,
        "nonce": nonce,
        "verifier": verifier,
        "redirect_uri": redirect_uri,
        "started": datetime.datetime.now(tz=datetime.timezone.utc).strftime("%H:%M:%S UTC"),
    }
    request.session[PENDING_SESSION_KEY] = dict(list(pending.items())[-MAX_PENDING:])
    query = {
        "client_id": client.client_id,
        "response_type": client.response_type,
        "response_mode": flow.response_mode,
        "redirect_uri": redirect_uri,
        "scope": client.scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = HttpResponseRedirect(f"{authorization_endpoint}?{urlencode(query)}")
    response.status_code = 303
    return response


# Dynamic client registration --------------------------------------------------------------


@require_POST
def register(request: HttpRequest) -> HttpResponse:
    """Register a new client at the server (RFC 7591), then show the request and the answer."""
    try:
        endpoint = discover(request).get("registration_endpoint")
    except transport.TransportError as error:
        return page(request, "relying_party/problem.html", {"problem": f"Discovery failed: {error}"})
    if not isinstance(endpoint, str):
        return page(
            request,
            "relying_party/problem.html",
            {"problem": "The discovery document has no registration_endpoint: the server does not offer registration."},
        )
    local_name = "registered-" + secrets.token_hex(4)
    redirect_uri = request.build_absolute_uri(f"/callback/{local_name}/")
    document = dynamic_registration_request(redirect_uri, relying_party_jwks=keys.public_jwks())
    try:
        reply = transport.post_json(endpoint, document)
        answer = reply.json()
    except (transport.TransportError, ValueError) as error:
        return page(request, "relying_party/problem.html", {"problem": f"Registration failed: {error}"})
    registrations = dict(request.session.get(REGISTRATIONS_SESSION_KEY, {}))
    registrations[local_name] = {
        "endpoint": endpoint,
        "request": document,
        "status": reply.status,
        "answer": answer if isinstance(answer, dict) else {},
        "registered": datetime.datetime.now(tz=datetime.timezone.utc).strftime("%H:%M:%S UTC"),
    }
    request.session[REGISTRATIONS_SESSION_KEY] = dict(list(registrations.items())[-MAX_REGISTRATIONS:])
    response = HttpResponseRedirect(reverse("relying_party:registration", args=[local_name]))
    response.status_code = 303
    return response


def registered(registration: dict[str, Any]) -> bool:
    """Whether the server registered the client (RFC 7591 3.2.1: 201 with a client_id)."""
    return registration["status"] == 201 and isinstance(registration["answer"].get("client_id"), str)


#: Members of a registration answer that are credentials: shown shortened.
REGISTRATION_SECRETS = ("client_secret", "registration_access_token")


@require_GET
def registration(request: HttpRequest, name: str) -> HttpResponse:
    found = request.session.get(REGISTRATIONS_SESSION_KEY, {}).get(name)
    if found is None:
        raise Http404("No such registration in this browser session.")
    answer = {key: shorten(value) if key in REGISTRATION_SECRETS else value for key, value in found["answer"].items()}
    client = registered_client(name, found["answer"]) if registered(found) else None
    return page(
        request,
        "relying_party/registration.html",
        {
            "name": name,
            "registration": found,
            "request_document": pretty(found["request"]),
            "answer_document": pretty(answer),
            "client": client,
            "relying_party_kid": keys.decryption_key().kid,
        },
    )


# Callback ---------------------------------------------------------------------------------


@csrf_exempt  # form_post.jwt arrives as a POST from the server's page, without a CSRF token.
@require_http_methods(["GET", "POST"])
def callback(request: HttpRequest, client_id: str) -> HttpResponse:
    # The state check needs this browser's session. Here the server is on the same site, so the
    # session cookie (SameSite=Lax) comes along with the form_post POST; a relying party on
    # another site than its authorization server needs SESSION_COOKIE_SAMESITE = "None" (and
    # SESSION_COOKIE_SECURE) for that cross-site POST, or another way to find the session.
    client, _ = client_and_flow(request, client_id)
    if request.method == "POST" and "relayed_fragment" in request.POST:
        delivery = "fragment"
        params = parse_qsl(request.POST["relayed_fragment"], keep_blank_values=True)
    elif request.method == "POST":
        delivery = "form_post"
        params = [(name, value) for name, values in request.POST.lists() for value in values]
    elif request.GET:
        delivery = "query"
        params = [(name, value) for name, values in request.GET.lists() for value in values]
    else:
        # Nothing in the query: the response may be in the fragment, which only the browser
        # sees. The page's script (static/relying_party/fragment.js) posts it back here.
        return page(request, "relying_party/callback.html", {"client": client})
    result = process_response(request, client, delivery, params)
    results = dict(request.session.get(RESULTS_SESSION_KEY, {}))
    results[result["id"]] = result
    request.session[RESULTS_SESSION_KEY] = dict(list(results.items())[-MAX_RESULTS:])
    response = HttpResponseRedirect(reverse("relying_party:result", args=[result["id"]]))
    response.status_code = 303
    return response


@require_GET
def result(request: HttpRequest, result_id: str) -> HttpResponse:
    found = request.session.get(RESULTS_SESSION_KEY, {}).get(result_id)
    if found is None:
        # The demo's own page, not Django's DEBUG 404: results live in the browser session that
        # received them (another browser, a new session or a restarted demo does not have it).
        problem = (
            "No such result in this browser session: a result page opens only in the browser that received "
            "the response. Start a flow from the demo clients."
        )
        return page(request, "relying_party/problem.html", {"problem": problem}, status=404)
    return page(request, "relying_party/result.html", {"result": found})


# Processing -------------------------------------------------------------------------------

DELIVERY_NAMES = {
    "query": "in the query of a GET to the callback",
    "form_post": "in the body of a form POST to the callback (the server's page submitted it)",
    "fragment": "in the URL fragment; the callback page's script posted it to the relying party",
}


def process_response(
    request: HttpRequest, client: DemoClient, delivery: str, params: list[tuple[str, str]]
) -> dict[str, Any]:
    names = [name for name, _ in params]
    token = next((value for name, value in params if name == "response"), "")
    outcome: dict[str, Any] = {
        "id": secrets.token_urlsafe(9),
        "client": {"client_id": client.client_id, "name": client.name},
        "received": datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "delivery": {
            "mode": delivery,
            "how": DELIVERY_NAMES[delivery],
            "params": names,
            "outside": [name for name in names if name != "response"],
            "jwt": f"{shorten(token, 24)} ({len(token)} characters, {token.count('.') + 1} segments)" if token else "",
        },
        "checks": [],
        "verdict": FAIL,
        "response": None,
        "token": None,
        "problem": "",
    }
    if not token:
        plain = redact(dict(params))
        outcome["problem"] = (
            "No response parameter: the server answered in a plain response mode, which nothing protects. "
            + (f"It says error={plain['error']!r}." if "error" in plain else "")
        )
        outcome["response"] = {"kind": "plain", "claims": pretty(plain)}
        return outcome
    try:
        discovery = discover(request)
        jwks = server_jwks(discovery)
    except transport.TransportError as error:
        outcome["problem"] = f"The authorization server's metadata could not be read: {error}"
        return outcome
    expectation = Expectation(
        issuer=discovery["issuer"],
        client_id=client.client_id,
        signing_alg=client.signing_alg,
        encryption_alg=client.encryption_alg,
        encryption_enc=client.encryption_enc,
        client_secret=client.client_secret,
        decryption_key=keys.decryption_key() if client.encryption_key_source == "relying party key" else None,
    )
    pending = dict(request.session.get(PENDING_SESSION_KEY, {}))
    verification = verify_response(token, expectation, jwks=jwks, pending=pending)
    if verification.flow is not None:
        # The state is used up: the same response (or another one with this state) fails step 6.
        del pending[verification.flow["state"]]
        request.session[PENDING_SESSION_KEY] = pending
    outcome["checks"] = [check.as_dict() for check in verification.checks]
    if not verification.ok:
        failed = [str(check.number) for check in verification.checks if check.outcome == FAIL]
        steps = f"Step {failed[0]}" if len(failed) == 1 else f"Steps {', '.join(failed[:-1])} and {failed[-1]}"
        outcome["problem"] = (
            f"{steps} failed: the response must be refused."
            " A code in it is not redeemed: a client never uses an unverified response."
        )
        return outcome
    claims = verification.claims or {}
    flow = verification.flow or {}
    outcome["verdict"] = PASS
    response_claims = {k: v for k, v in claims.items() if k not in ("iss", "aud", "exp", "iat")}
    if "error" in claims:
        outcome["response"] = {
            "kind": "error",
            "error": claims["error"],
            "error_description": claims.get("error_description", ""),
            "error_uri": claims.get("error_uri", ""),
            "claims": pretty(redact(response_claims)),
        }
        return outcome
    outcome["response"] = {"kind": "success", "claims": pretty(redact(response_claims))}
    extra: list[Check] = []
    if isinstance(claims.get("id_token"), str):
        extra.append(
            check_id_token(
                claims["id_token"],
                jwks=jwks,
                issuer=discovery["issuer"],
                client_id=client.client_id,
                nonce=flow.get("nonce"),
                title="ID token in the authorization response",
                code=claims["code"] if isinstance(claims.get("code"), str) else None,
            )
        )
    if isinstance(claims.get("code"), str):
        outcome["token"] = redeem(discovery, jwks, client, flow, claims["code"], extra)
    outcome["extra_checks"] = [check.as_dict() for check in extra]
    if any(check.outcome == FAIL for check in extra) or (outcome["token"] and outcome["token"]["status"] != 200):
        outcome["verdict"] = FAIL
    return outcome


def redeem(
    discovery: dict[str, Any],
    jwks: dict[str, Any],
    client: DemoClient,
    flow: dict[str, Any],
    code: str,
    extra: list[Check],
) -> dict[str, Any]:
    """POST the code to the token endpoint (with the PKCE verifier) and show the answer."""
    url = discovery["token_endpoint"]
    fields = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.get("redirect_uri", ""),
        "code_verifier": flow.get("verifier", ""),
    }
    shown_request = [
        ("POST", url),
        ("Authorization", f"Basic (client_secret_basic: {client.client_id} : {shorten(client.client_secret)})"),
        *[(name, shorten(value) if name in ("code", "code_verifier") else value) for name, value in fields.items()],
    ]
    answer: dict[str, Any] = {"request": [list(row) for row in shown_request], "status": 0, "body": ""}
    try:
        reply = transport.post_form(
            url, fields, authorization=transport.basic_auth(client.client_id, client.client_secret)
        )
    except transport.TransportError as error:
        answer["body"] = str(error)
        return answer
    answer["status"] = reply.status
    try:
        body = reply.json()
    except ValueError:
        answer["body"] = reply.body.decode("utf-8", errors="replace")[:2000]
        return answer
    answer["body"] = pretty(redact(body) if isinstance(body, dict) else body)
    if isinstance(body, dict) and isinstance(body.get("id_token"), str):
        extra.append(
            check_id_token(
                body["id_token"],
                jwks=jwks,
                issuer=discovery["issuer"],
                client_id=client.client_id,
                nonce=flow.get("nonce"),
                title="ID token from the token endpoint",
            )
        )
    return answer


def callback_origin_ok(request: HttpRequest) -> bool:
    """Whether the demo is opened on an origin its clients' callbacks are registered for."""
    origin = f"{request.scheme}://{request.get_host()}"
    # DOT accepts any port on the loopback address 127.0.0.1 (RFC 8252 7.3).
    return origin in CALLBACK_ORIGINS or urlsplit(origin).hostname == "127.0.0.1"
