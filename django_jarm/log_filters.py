"""A logging filter that redacts authorization secrets from log records.

django_jarm never logs codes, tokens, JWTs or ``state``; oauthlib does at DEBUG level
("Created authorization code grant {'code': ...}"). Attach this filter to the handlers that
receive ``oauthlib`` and ``oauth2_provider`` records::

    LOGGING = {
        "version": 1,
        "filters": {"redact": {"()": "django_jarm.log_filters.RedactSecretsFilter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
        ...
    }
"""

from __future__ import annotations

import logging
import re

SECRET_NAMES = (
    "code",
    "access_token",
    "refresh_token",
    "id_token",
    "state",
    "response",
    "nonce",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "password",
    "sessionid",
    "csrftoken",
    "csrfmiddlewaretoken",
)
_NAMES = "|".join(SECRET_NAMES)
#: A separator a name follows in a URL, plain or percent-encoded (once or more): ? & # or start.
_ENCODED_BOUNDARY = r"%(?:25)*(?:3[Ff]|26|23)"
_PATTERNS = (
    # Percent-encoded URLs inside URLs: %3Fcode%3D...%26state%3D... (a value ends at %26 or %23).
    (
        re.compile(
            rf"((?:{_ENCODED_BOUNDARY}|(?<![A-Za-z0-9_%])))({_NAMES})(%(?:25)*3[Dd])(?:(?!%(?:25)*(?:26|23))[^&\s'\"#])+"
        ),
        r"\1\2\3[redacted]",
    ),
    # URL and form encodings: code=...&state=...
    (re.compile(rf"(?<![A-Za-z_])({_NAMES})=[^&\s'\"#]+"), r"\1=[redacted]"),
    # Python reprs and JSON: {'code': '...'} / "state": "..."
    (re.compile(rf"""(['"])({_NAMES})\1(\s*:\s*)(['"])(?:(?!\4).)*\4"""), r"\1\2\1\3\4[redacted]\4"),
    # QueryDict and other reprs of lists: <QueryDict: {'code': ['...', '...']}>
    (re.compile(rf"""(['"])({_NAMES})\1(\s*:\s*)\[[^\]]*\]"""), r"\1\2\1\3['[redacted]']"),
    # Tuples of pairs: [('code', '...'), ('state', '...')]
    (re.compile(rf"""\(\s*(['"])({_NAMES})\1(\s*,\s*)(['"])(?:(?!\4).)*\4\s*\)"""), r"(\1\2\1\3\4[redacted]\4)"),
    # Credentials in headers: Authorization: Bearer ..., 'HTTP_AUTHORIZATION': 'Basic ...'
    (re.compile(r"(?i)\b(Bearer|Basic|DPoP|Digest)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 [redacted]"),
    # Anything shaped like a JWS or JWE.
    (re.compile(r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-.]*"), "[redacted JWT]"),
)
#: Statement parameters shorter than this stay in SQL log lines (ids, flags, short names).
SQL_PARAMETER_MIN_LENGTH = 8


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_sql_parameters(record: logging.LogRecord, message: str) -> str:
    """django.db.backends logs statements with their values inlined: codes, tokens, stored keys."""
    params = getattr(record, "params", None)
    if not isinstance(params, (list, tuple)):
        return message
    for value in params:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if isinstance(text, str) and len(text) >= SQL_PARAMETER_MIN_LENGTH:
            message = message.replace(text, "[redacted]")
    return message


class RedactSecretsFilter(logging.Filter):
    """Replaces the values of codes, tokens, ``state``, secrets and JWTs in every record it sees.

    Records that carry the request (``django.request``, read by Django's ``AdminEmailHandler``
    to build its report of GET, POST, cookies and headers) lose it: the report then holds the
    redacted message only.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error handling
            return True
        redacted = redact(_redact_sql_parameters(record, message))
        if redacted != message:
            record.msg, record.args = redacted, None
        for attribute in ("request", "sql", "params"):
            if attribute in record.__dict__:
                delattr(record, attribute)
        if record.exc_info and not record.exc_text:
            # Tracebacks can hold secrets too (Django's template debug records dump the context).
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Formatters print exc_text as it is; without exc_info nothing renders the original.
            record.exc_text, record.exc_info = redact(record.exc_text), None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
