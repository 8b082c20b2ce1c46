"""The relying party's own key: the RSA key that encrypted responses are encrypted to.

The private key lives in a file outside version control (``settings.RELYING_PARTY``, created on
first use); its public part is what ``manage.py jarm_demo`` registers in the encrypting client's
JWK Set.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from joserfc.jwk import RSAKey

#: The JWE algorithm this key is registered for.
ENCRYPTION_ALG = "RSA-OAEP-256"


@lru_cache(maxsize=4)
def _load(pem: str) -> RSAKey:
    key = RSAKey.import_key(pem)
    # RFC 7638 thumbprint: the server puts it in the JWE header, so the client knows which of
    # its keys the response was encrypted to.
    return RSAKey.import_key(pem, parameters={"kid": key.thumbprint(), "use": "enc", "alg": ENCRYPTION_ALG})


def decryption_key() -> RSAKey:
    """The private key (never leaves the relying party)."""
    return _load(settings.RELYING_PARTY["ENCRYPTION_KEY_PEM"])


def public_jwks() -> dict[str, Any]:
    """The JWK Set to register at the authorization server: public members only."""
    return {"keys": [decryption_key().as_dict(private=False)]}
