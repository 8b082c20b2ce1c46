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
    "password",
)
_NAMES = "|".join(SECRET_NAMES)
_PATTERNS = (
    # URL and form encodings: code=...&state=...
    (re.compile(rf"(?<![A-Za-z_])({_NAMES})=[^&\s'\"#]+"), r"\1=[redacted]"),
    # Python reprs and JSON: {'code': '...'} / "state": "..."
    (re.compile(rf"""(['"])({_NAMES})\1(\s*:\s*)(['"])(?:(?!\4).)*\4"""), r"\1\2\1\3\4[redacted]\4"),
    # Anything shaped like a JWS or JWE.
    (re.compile(r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-.]*"), "[redacted JWT]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Replaces the values of codes, tokens, ``state``, secrets and JWTs in every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error handling
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Tracebacks can hold secrets too (Django's template debug records dump the context).
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Formatters print exc_text as it is; without exc_info nothing renders the original.
            record.exc_text, record.exc_info = redact(record.exc_text), None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
