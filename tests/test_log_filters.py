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
