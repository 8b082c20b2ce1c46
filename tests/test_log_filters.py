from __future__ import annotations

import logging

import pytest

from django_jarm.log_filters import RedactSecretsFilter, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Success url for the request: https://rp.example/cb?code=abc123&state=st-9",
            "Success url for the request: https://rp.example/cb?code=[redacted]&state=[redacted]",
        ),
        (
            "Created authorization code grant {'code': 'abc123', 'state': 'st-9'} for request",
            "Created authorization code grant {'code': '[redacted]', 'state': '[redacted]'} for request",
        ),
        ('{"access_token": "at-1", "expires_in": 3600}', '{"access_token": "[redacted]", "expires_in": 3600}'),
        ("https://rp.example/cb#response=eyJhbGciOi.eyJpc3Mi.c2ln", "https://rp.example/cb#response=[redacted]"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.sig here", "token [redacted JWT] here"),
        ("grant_type=authorization_code&client_id=abc", "grant_type=authorization_code&client_id=abc"),
        ("nothing secret in response_mode=jwt", "nothing secret in response_mode=jwt"),
        (
            "GET /accounts/login/?next=/o/authorize/%3Fclient_id%3Dabc%26state%3Dst-9%26nonce%3Dn-1%26scope%3Dopenid",
            "GET /accounts/login/?next=/o/authorize/%3Fclient_id%3Dabc%26state%3D[redacted]%26nonce%3D[redacted]"
            "%26scope%3Dopenid",
        ),
        (
            "next=%2Fcb%253Fcode%253Dc-1%2526state%253Ds-1",
            "next=%2Fcb%253Fcode%253D[redacted]%2526state%253D[redacted]",
        ),
        ("%3fcode%3dc-1%23frag", "%3fcode%3d[redacted]%23frag"),
        (
            "%3Fcode_challenge%3Dabc%26code_challenge_method%3DS256",
            "%3Fcode_challenge%3Dabc%26code_challenge_method%3DS256",
        ),
        (
            "<QueryDict: {'code': ['c-1'], 'state': ['s-1', 's-2'], 'scope': ['openid']}>",
            "<QueryDict: {'code': ['[redacted]'], 'state': ['[redacted]'], 'scope': ['openid']}>",
        ),
        (
            "[('client_id', 'abc'), ('code', 'c-1'), (\"state\", \"s'1\")]",
            "[('client_id', 'abc'), ('code', '[redacted]'), (\"state\", \"[redacted]\")]",
        ),
        ("Authorization: Bearer at-1.x_y~z/+==", "Authorization: Bearer [redacted]"),
        ("{'HTTP_AUTHORIZATION': 'Basic Y2xpZW50OnNlY3JldA=='}", "{'HTTP_AUTHORIZATION': 'Basic [redacted]'}"),
        ("authorization: bearer at-2", "authorization: bearer [redacted]"),
        ("Cookie: sessionid=s3ss10n; csrftoken=csrf-1", "Cookie: sessionid=[redacted] csrftoken=[redacted]"),
        ("state=a%26b&scope=openid", "state=[redacted]&scope=openid"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_filter_rewrites_formatted_records(caplog):
    logger = logging.getLogger("tests.redact")
    handler = caplog.handler
    handler.addFilter(RedactSecretsFilter())
    try:
        with caplog.at_level(logging.DEBUG, logger="tests.redact"):
            logger.debug("Saving grant %r for %s", {"code": "secret-code", "state": "st-1"}, "<request>")
            logger.debug("plain %s", "message")
    finally:
        handler.removeFilter(handler.filters[-1])
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["Saving grant {'code': '[redacted]', 'state': '[redacted]'} for <request>", "plain message"]


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_filter_drops_the_request_that_admin_email_reports_are_built_from():
    from django.test import RequestFactory

    request = RequestFactory().get("/cb?code=c-secret-1&state=s-secret-1", HTTP_AUTHORIZATION="Bearer at-secret-1")
    record = _record("Internal Server Error: %s", request.path, request=request, status_code=500)
    assert RedactSecretsFilter().filter(record) is True
    assert not hasattr(record, "request")
    assert record.status_code == 500
    assert record.getMessage() == "Internal Server Error: /cb"


def test_filter_redacts_sql_parameters():
    record = logging.LogRecord(
        "django.db.backends",
        logging.DEBUG,
        __file__,
        1,
        "(%.3f) %s; args=%s; alias=%s",
        (
            0.001,
            "INSERT INTO grant (code, nonce, id) VALUES ('c0de-c0de-1', 'n', 7)",
            ("c0de-c0de-1", "n", 7),
            "default",
        ),
        None,
    )
    record.sql = "INSERT INTO grant (code, nonce, id) VALUES ('c0de-c0de-1', 'n', 7)"
    record.params = ("c0de-c0de-1", "n", 7)
    RedactSecretsFilter().filter(record)
    message = record.getMessage()
    assert "c0de-c0de-1" not in message
    assert message == (
        "(0.001) INSERT INTO grant (code, nonce, id) VALUES ('[redacted]', 'n', 7); args=('[redacted]', 'n', 7); "
        "alias=default"
    )
    assert not hasattr(record, "sql")
    assert not hasattr(record, "params")
