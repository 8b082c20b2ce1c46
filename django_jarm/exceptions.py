"""The errors django_jarm raises, under one root, and the :class:`Refusal` value.

Messages are safe to show to an operator and to log: they never contain key material, codes,
tokens or ``state`` values.
"""

from __future__ import annotations

from dataclasses import dataclass


class JARMError(Exception):
    """Root of every django_jarm error."""


class ConfigurationError(JARMError):
    """Settings, keys or client metadata do not allow what was asked."""


class KeyUnavailable(ConfigurationError):
    """No usable key to sign (or encrypt) a response for this client: answered ``server_error``."""


class ClientKeysUnreachable(KeyUnavailable):
    """The client's ``jwks_uri`` could not be fetched, or did not answer a usable JWK Set."""


class KeyDecryptionError(KeyUnavailable):
    """A stored private key cannot be decrypted with the configured ``KEY_ENCRYPTION_SECRET``."""


class ResponseBuildError(ConfigurationError):
    """Signing or encrypting a response failed (the JOSE library refused the key or the input)."""


class LifecycleConflict(ConfigurationError):
    """A server key operation was refused: it conflicts with the keys' state, or would break a guarantee.

    ``retry_after`` is the number of seconds after which the same operation will be allowed, when
    waiting is the remedy.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Refusal:
    """An OAuth 2.0 error answered to the client instead of the authorization response.

    It is a value, not an exception: the core decides it, and the view adapter converts it to
    DOT's error type exactly once.
    """

    error: str
    description: str

    def params(self, state: str | None) -> list[tuple[str, str]]:
        """The response parameters of this error (RFC 6749 4.1.2.1)."""
        params = [("error", self.error), ("error_description", self.description)]
        if state:
            params.append(("state", state))
        return params


#: Sent when no JWT can be built for the client; the reason goes to the log, not to the client.
SERVER_ERROR = Refusal("server_error", "The authorization server cannot produce a signed response for this client.")
