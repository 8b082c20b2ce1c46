"""Checks on the raw authorization request, before DOT or oauthlib parse it.

Django decodes a query string or form body leniently (a bad escape stays as it is, invalid
UTF-8 becomes U+FFFD) while oauthlib raises ``ValueError`` on some of the same input, and
PostgreSQL refuses values SQLite stores. Each would be a 500, or a ``state`` silently changed on
its way back to the client. These checks find such requests first, so that the authorization
view answers them with an error page (nothing is verified yet, so nothing is redirected).

They work on the raw bytes, in one pass of C-level scans in the common case: a request made
only of well-formed ASCII costs a few microseconds.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest
from oauth2_provider.models import get_application_model, get_grant_model

#: A ``%`` not followed by two hex digits (RFC 3986 2.1).
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
#: A percent-encoded byte that can only be part of a multi-byte UTF-8 sequence.
_ENCODED_NON_ASCII = re.compile(rb"%[89A-Fa-f]")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@functools.lru_cache(maxsize=1)
def _stored_parameter_limits() -> dict[str, int]:
    """Request parameters DOT stores, with the length of the column that receives them."""
    grant = get_grant_model()._meta
    application = get_application_model()._meta
    return {
        "client_id": application.get_field("client_id").max_length,
        **{name: grant.get_field(name).max_length for name in ("nonce", "code_challenge", "code_challenge_method")},
    }


@functools.lru_cache(maxsize=1)
def _raw_limits() -> tuple[dict[bytes, int], int]:
    limits = {name.encode("ascii"): limit for name, limit in _stored_parameter_limits().items()}
    return limits, min(limits.values())


def encoding_problem(raw: bytes) -> str | None:
    """Why ``raw`` (a query string or form body) is not well-formed, or ``None``."""
    if b"%" in raw and _BAD_ESCAPE.search(raw):
        return "a malformed percent-escape"
    if not raw.isascii() or (b"%" in raw and _ENCODED_NON_ASCII.search(raw)):
        try:
            # Separators are ASCII and never part of a multi-byte sequence: the whole string is
            # valid UTF-8 exactly when every name and value is.
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return "a parameter is not valid UTF-8"
    return None


def storage_problem(raw: bytes) -> str | None:
    """Why DOT could not store the parameters of ``raw`` (a NUL, too long), or ``None``.

    PostgreSQL refuses both, SQLite neither: without this check the same request would be a
    500 on one database and accepted on the other.
    """
    if b"\x00" in raw or b"%00" in raw:
        return "a parameter contains a NUL character"
    limits, shortest = _raw_limits()
    if len(raw) <= shortest:
        return None
    # Split as Django's QueryDict does ("&" only). A raw value no longer than its limit decodes
    # to no more characters, so only the long ones are decoded.
    for pair in raw.split(b"&"):
        name, _, value = pair.partition(b"=")
        if len(value) <= shortest:
            continue
        if b"%" in name or b"+" in name:
            name = _decoded(name).encode("utf-8")
        limit = limits.get(name)
        if limit is not None and len(value) > limit:
            length = len(_decoded(value))
            if length > limit:
                return f"{name.decode()} is longer than {limit} characters"
    return None


def _decoded(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", errors="replace")


def unstorable_parameter(request: HttpRequest) -> str | None:
    """:func:`storage_problem` of the parsed parameters, for bodies that are not form-encoded."""
    for source in (request.GET, request.POST):
        for name, values in source.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return "a parameter contains a NUL character"
    for name, limit in _stored_parameter_limits().items():
        if any(len(value) > limit for value in (*request.GET.getlist(name), *request.POST.getlist(name))):
            return f"{name} is longer than {limit} characters"
    return None


def raw_query_string(request: HttpRequest) -> bytes:
    """The query string as the client sent it."""
    scope: Any = getattr(request, "scope", None)
    if isinstance(scope, dict) and isinstance(scope.get("query_string"), bytes):
        return scope["query_string"]  # ASGI
    value = str(request.META.get("QUERY_STRING", ""))
    try:
        return value.encode("iso-8859-1")  # WSGI (PEP 3333): bytes carried as latin-1
    except UnicodeEncodeError:
        return value.encode("utf-8")


def authorization_request_problem(request: HttpRequest) -> str | None:
    """Why the authorization endpoint must refuse ``request`` outright, or ``None``.

    Covers the query string and, on a POST, a form-encoded body: malformed percent-escapes,
    invalid UTF-8, NUL characters and values longer than DOT's columns; and in the query string,
    bytes outside ASCII that are not percent-encoded.
    """
    sources = [raw_query_string(request)]
    if request.method == "POST":
        if request.content_type == FORM_CONTENT_TYPE:
            sources.append(request.body)
        else:
            problem = unstorable_parameter(request)
            if problem:
                return problem
    for raw in sources:
        problem = encoding_problem(raw) or storage_problem(raw)
        if problem:
            return problem
    if not sources[0].isascii():
        # RFC 3986 3.4: a query is ASCII; browsers percent-encode the rest. DOT hands oauthlib the
        # query string re-encoded from its latin-1 WSGI form, so raw UTF-8 would reach the
        # client's state (and the stored nonce) changed.
        return "the query string has characters that are not percent-encoded"
    return None
