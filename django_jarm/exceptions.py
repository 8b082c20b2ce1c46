"""The errors django_jarm raises. ``JARMError`` is the root of all of them."""

from __future__ import annotations


class JARMError(Exception):
    """Root of every django_jarm error."""


class ConfigurationError(JARMError):
    """Settings, keys or client metadata do not allow building a response.

    The message is safe to show to an operator and to log: it never contains key material.
    """


class KeyDecryptionError(ConfigurationError):
    """A stored private key cannot be decrypted with the configured ``KEY_ENCRYPTION_SECRET``."""


class ProtocolError(JARMError):
    """An OAuth 2.0 error answered to the client; carries its RFC 6749 ``error`` code."""

    error = "invalid_request"

    def __init__(self, description: str, *, error: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        if error is not None:
            self.error = error


class UnsupportedResponseMode(ProtocolError):
    """The ``response_mode`` is unknown, not offered by this server, or repeated.

    It cannot be honoured, so the error goes back in the plain default mode of the response
    type (the behaviour of the certified reference implementation).
    """


class ResponseModeNotAllowed(ProtocolError):
    """A supported mode refused by policy; answered wrapped in a JWT."""


class ResponseNotBuildable(ProtocolError):
    """The server cannot sign (or encrypt) a response for this client: ``server_error``."""

    error = "server_error"
