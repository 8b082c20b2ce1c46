"""The raw-request checks of the authorization endpoint (django_jarm.request_checks)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import RequestFactory

from django_jarm.request_checks import (
    authorization_request_problem,
    encoding_problem,
    raw_query_string,
    storage_problem,
)

WELL_FORMED = urlencode(
    {
        "client_id": "c" * 40,
        "response_type": "code id_token",
        "redirect_uri": "https://rp.example/cb?x=1",
        "scope": "openid read",
        "state": "été \u2028 <script>",
        "nonce": "n" * 255,
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
).encode()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (WELL_FORMED, None),
        (b"", None),
        (b"a=%41%42&b=+&c=%e2%80%a8&%3D=%26", None),
        ("état=été".encode(), None),  # raw UTF-8: unusual, but valid
        (b"a=%zz", "a malformed percent-escape"),
        (b"a=%", "a malformed percent-escape"),
        (b"a=%4", "a malformed percent-escape"),
        (b"a=%4g", "a malformed percent-escape"),
        (b"a=%u0041", "a malformed percent-escape"),
        (b"%=1", "a malformed percent-escape"),
        (b"a=%ff", "a parameter is not valid UTF-8"),
        (b"a=%c3&b=%a9", "a parameter is not valid UTF-8"),  # a sequence split by a separator
        (b"a=%c3%26%a9", "a parameter is not valid UTF-8"),
        (b"a=%ed%b2%80", "a parameter is not valid UTF-8"),  # a surrogate
        (b"a=%f4%90%80%80", "a parameter is not valid UTF-8"),  # past U+10FFFF
        (b"a=\xff", "a parameter is not valid UTF-8"),
        (b"\xe9t\xe9=1", "a parameter is not valid UTF-8"),  # latin-1, not UTF-8
    ],
)
def test_encoding_problem(raw, problem):
    assert encoding_problem(raw) == problem


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (WELL_FORMED, None),
        (b"nonce=" + b"n" * 255, None),
        (b"nonce=" + b"%41" * 255, None),  # 765 octets encoded, 255 characters decoded
        (b"nonce=" + "é".encode() * 255, None),  # characters, not octets
        (b"state=" + b"s" * 10_000, None),  # not stored by DOT
        (b"nonce=" + b"n" * 256, "nonce is longer than 255 characters"),
        (b"n%6Fnce=" + b"n" * 256, "nonce is longer than 255 characters"),
        (b"client_id=" + b"c" * 256, "client_id is longer than 255 characters"),
        (b"code_challenge=" + b"c" * 129, "code_challenge is longer than 128 characters"),
        (b"code_challenge_method=S256S256S256", "code_challenge_method is longer than 10 characters"),
        (b"code_challenge_method=S256+S256+S256", "code_challenge_method is longer than 10 characters"),
        (b"a=%00", "a parameter contains a NUL character"),
        (b"a\x00=1", "a parameter contains a NUL character"),
    ],
)
def test_storage_problem(raw, problem):
    assert storage_problem(raw) == problem


def test_the_raw_query_string_is_what_the_client_sent():
    request = RequestFactory().get("/o/authorize/", QUERY_STRING=b"state=\xff%41".decode("latin-1"))
    assert raw_query_string(request) == b"state=\xff%41"
    assert request.GET["state"] == "ÿA"  # what Django's lenient decoding would have passed on


def test_asgi_requests_are_read_from_the_scope():
    from django.core.handlers.asgi import ASGIRequest

    scope = {"type": "http", "method": "GET", "path": "/o/authorize/", "query_string": b"state=%ff", "headers": []}
    request = ASGIRequest(scope, b"")
    assert raw_query_string(request) == b"state=%ff"
    assert authorization_request_problem(request) == "a parameter is not valid UTF-8"


def test_form_bodies_are_checked():
    factory = RequestFactory()
    request = factory.post("/o/authorize/", b"state=%zz", content_type="application/x-www-form-urlencoded")
    assert authorization_request_problem(request) == "a malformed percent-escape"
    request = factory.post("/o/authorize/?state=%ff", b"state=s", content_type="application/x-www-form-urlencoded")
    assert authorization_request_problem(request) == "a parameter is not valid UTF-8"
    request = factory.post("/o/authorize/", {"nonce": "n" * 256})  # multipart: checked once parsed
    assert authorization_request_problem(request) == "nonce is longer than 255 characters"
    request = factory.post("/o/authorize/", {"state": "a\x00b"})
    assert authorization_request_problem(request) == "a parameter contains a NUL character"
    request = factory.post("/o/authorize/?" + WELL_FORMED.decode(), {"allow": "Authorize"})
    assert authorization_request_problem(request) is None
