"""The relying party's HTTP client: how it talks to the authorization server (stdlib only).

Everything goes over HTTP, as it would between two separate deployments: discovery, the JWK Set
and the token endpoint. (The demo serves both parties from one process, so the development
server must be threaded, which it is by default.) Tests that run without a server replace
:data:`send` with a function of the same signature.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError
from urllib.parse import quote, urlencode
from urllib.request import ProxyHandler, Request, build_opener

from django.conf import settings


@dataclass(frozen=True)
class HTTPResponse:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class TransportError(Exception):
    """The authorization server could not be reached, or answered something unreadable."""


# No proxy: the authorization server is on the same machine, and a proxy from the environment
# (HTTP_PROXY) would not reach 127.0.0.1.
_opener = build_opener(ProxyHandler({}))


def _send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> HTTPResponse:
    request = Request(url, data=body, headers=headers, method=method)
    try:
        with _opener.open(request, timeout=settings.RELYING_PARTY["HTTP_TIMEOUT"]) as answer:
            return HTTPResponse(answer.status, answer.headers.get("Content-Type", ""), answer.read())
    except HTTPError as error:
        with error:
            return HTTPResponse(error.code, error.headers.get("Content-Type", ""), error.read())
    except OSError as error:
        raise TransportError(f"{method} {url} failed: {error}") from error


#: ``send(method, url, headers, body) -> HTTPResponse``; replaceable in tests.
send: Callable[[str, str, dict[str, str], bytes | None], HTTPResponse] = _send


def get_json(url: str) -> Any:
    """GET a JSON document (discovery, JWK Set); a non-200 answer is an error."""
    answer = send("GET", url, {"Accept": "application/json"}, None)
    if answer.status != 200:
        raise TransportError(f"GET {url} answered HTTP {answer.status}")
    try:
        return answer.json()
    except ValueError as error:
        raise TransportError(f"GET {url} did not answer JSON: {error}") from error


def basic_auth(client_id: str, client_secret: str) -> str:
    """``client_secret_basic`` (RFC 6749 2.3.1: each part form-urlencoded first)."""
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def post_form(url: str, fields: dict[str, str], *, authorization: str) -> HTTPResponse:
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": authorization,
    }
    return send("POST", url, headers, urlencode(fields).encode("ascii"))


def post_json(url: str, document: dict[str, Any]) -> HTTPResponse:
    """POST a JSON document (RFC 7591 client registration)."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    return send("POST", url, headers, json.dumps(document).encode("utf-8"))
