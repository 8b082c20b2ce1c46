"""The demo's OAuth clients: one per JARM feature worth clicking through.

``manage.py jarm_demo`` creates them (and resets them to this configuration on every run); the
home page links each one to the authorization endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oauth2_provider.models import AbstractApplication

#: Where every demo client receives its responses: the demo's own /callback/ page.
REDIRECT_URIS = ("http://127.0.0.1:8000/callback/", "http://localhost:8000/callback/")

#: The server keys the demo makes sure exist (RS256 uses DOT's OIDC key, OIDC_RSA_PRIVATE_KEY).
SERVER_KEY_ALGS = ("PS256", "ES256", "EdDSA")


@dataclass(frozen=True)
class DemoLink:
    """One ready-made authorization request."""

    response_mode: str
    expect: str


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    name: str
    response_type: str
    grant_type: str
    #: ClientSettings.authorization_signed_response_alg ("" would mean the server default).
    signing_alg: str
    links: tuple[DemoLink, ...]
    require_jarm: bool = False
    scope: str = "openid read"

    @property
    def client_secret(self) -> str:
        # A demo: fixed, readable secrets, stored unhashed (hash_client_secret=False) so you can
        # copy them into a curl command. Real clients keep DOT's default of hashed secrets
        # (unless they sign or encrypt with the secret, HS256 and friends).
        return f"{self.client_id}-secret"

    def application_fields(self, owner: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "user": owner,
            "client_type": AbstractApplication.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": self.grant_type,
            "redirect_uris": " ".join(REDIRECT_URIS),
            "post_logout_redirect_uris": "",
            # The consent page shows on every request: the point of the demo is to see it.
            "skip_authorization": False,
            "hash_client_secret": False,
            "client_secret": self.client_secret,
            # ID tokens signed with DOT's OIDC key.
            "algorithm": AbstractApplication.RS256_ALGORITHM,
        }

    def jarm_fields(self) -> dict[str, Any]:
        return {
            "authorization_signed_response_alg": self.signing_alg,
            "authorization_encrypted_response_alg": "",
            "authorization_encrypted_response_enc": "",
            "jwks": None,
            "jwks_uri": "",
            "response_modes": [],
            "require_jarm": self.require_jarm,
        }


DEMO_CLIENTS = (
    DemoClient(
        client_id="demo-code-jwt",
        name="JARM demo: code flow, response_mode=jwt (PS256)",
        response_type="code",
        grant_type=AbstractApplication.GRANT_AUTHORIZATION_CODE,
        signing_alg="PS256",
        links=(DemoLink("jwt", "jwt resolves to query.jwt for response_type=code: ?response=<JWT>"),),
    ),
    DemoClient(
        client_id="demo-form-post-jwt",
        name="JARM demo: code flow, form_post.jwt (ES256)",
        response_type="code",
        grant_type=AbstractApplication.GRANT_AUTHORIZATION_CODE,
        signing_alg="ES256",
        links=(DemoLink("form_post.jwt", "an auto-submitted form POSTs response=<JWT> to the callback"),),
    ),
    DemoClient(
        client_id="demo-fragment-jwt",
        name="JARM demo: code flow, fragment.jwt (EdDSA)",
        response_type="code",
        grant_type=AbstractApplication.GRANT_AUTHORIZATION_CODE,
        signing_alg="EdDSA",
        links=(DemoLink("fragment.jwt", "#response=<JWT>, read by a script on the callback page"),),
    ),
    DemoClient(
        client_id="demo-hybrid",
        name="JARM demo: hybrid flow code id_token, response_mode=jwt (RS256)",
        response_type="code id_token",
        grant_type=AbstractApplication.GRANT_OPENID_HYBRID,
        # RS256 signs with DOT's OIDC key: no JARM server key needed.
        signing_alg="RS256",
        links=(DemoLink("jwt", "jwt resolves to fragment.jwt for a response type with id_token: #response=<JWT>"),),
    ),
    DemoClient(
        client_id="demo-require-jarm",
        name="JARM demo: client that requires JARM (PS256)",
        response_type="code",
        grant_type=AbstractApplication.GRANT_AUTHORIZATION_CODE,
        signing_alg="PS256",
        require_jarm=True,
        links=(
            DemoLink("query.jwt", "?response=<JWT>"),
            DemoLink("query", "refused: invalid_request, itself delivered as a JWT (never in the clear)"),
        ),
    ),
)
