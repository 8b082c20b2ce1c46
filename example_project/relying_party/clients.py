"""The demo relying party's clients: one per JARM feature worth clicking through.

Each entry is what the relying party registered at the authorization server (the client metadata
of JARM section 3: signing and encryption algorithms, its public keys) plus the flows its home
page offers. ``manage.py jarm_demo`` registers them at the server (and resets them to this
configuration on every run); the relying party checks every response against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Hosts the demo clients' callbacks are registered on. DOT accepts any port on 127.0.0.1
#: (RFC 8252 7.3, loopback redirects), so the demo also works on another port there.
CALLBACK_ORIGINS = ("http://127.0.0.1:8000", "http://localhost:8000")

#: The server keys the demo makes sure exist (RS256 uses DOT's OIDC key, OIDC_RSA_PRIVATE_KEY).
SERVER_KEY_ALGS = ("PS256", "ES256", "EdDSA")

#: Encryption algorithms whose key is derived from the client secret (OpenID Connect Core 10.2).
SECRET_DERIVED_ALGS = frozenset(
    {"dir", "A128KW", "A192KW", "A256KW", "A128GCMKW", "A192GCMKW", "A256GCMKW"},
)

GRANT_AUTHORIZATION_CODE = "authorization-code"
GRANT_OPENID_HYBRID = "openid-hybrid"


@dataclass(frozen=True)
class Flow:
    """One authorization request the home page can start."""

    slug: str
    response_mode: str
    #: What the authorization server is expected to do with it.
    expect: str


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    name: str
    response_type: str
    grant_type: str
    #: authorization_signed_response_alg.
    signing_alg: str
    flows: tuple[Flow, ...]
    #: authorization_encrypted_response_alg / _enc ("" = signed only).
    encryption_alg: str = ""
    encryption_enc: str = ""
    require_jarm: bool = False
    scope: str = "openid read"
    #: A demo: fixed, readable secrets, stored unhashed at the server (``hash_client_secret=False``).
    #: Real clients keep DOT's default of hashed secrets, unless the server must use the secret
    #: as a key (HS256 signing, secret-derived encryption), as for ``demo-dir-secret``.
    secret: str = ""
    notes: tuple[str, ...] = field(default=())
    #: The relying party's own name for the client in its URLs; default: the client_id. A
    #: dynamically registered client needs its callback before the server has given it an id.
    local_name: str = ""

    @property
    def name_in_urls(self) -> str:
        return self.local_name or self.client_id

    @property
    def client_secret(self) -> str:
        return self.secret or f"{self.client_id}-secret"

    @property
    def callback_path(self) -> str:
        # One callback per client: the relying party knows which registration a response
        # belongs to (and so which keys to decrypt it with) before it has read a single claim.
        return f"/callback/{self.name_in_urls}/"

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        return tuple(origin + self.callback_path for origin in CALLBACK_ORIGINS)

    @property
    def encryption_key_source(self) -> str:
        """``"client secret"``, ``"relying party key"`` or ``""`` (not encrypted)."""
        if not self.encryption_alg:
            return ""
        return "client secret" if self.encryption_alg in SECRET_DERIVED_ALGS else "relying party key"

    def flow(self, slug: str) -> Flow | None:
        return next((flow for flow in self.flows if flow.slug == slug), None)

    def registration(self, *, relying_party_jwks: dict[str, Any]) -> dict[str, Any]:
        """The JARM client metadata to register (django_jarm's ClientSettings fields)."""
        encrypts_to_key = self.encryption_key_source == "relying party key"
        return {
            "authorization_signed_response_alg": self.signing_alg,
            "authorization_encrypted_response_alg": self.encryption_alg,
            "authorization_encrypted_response_enc": self.encryption_enc,
            "jwks": relying_party_jwks if encrypts_to_key else None,
            "jwks_uri": "",
            "response_modes": [],
            "require_jarm": self.require_jarm,
        }


DEMO_CLIENTS = (
    DemoClient(
        client_id="demo-code-jwt",
        name="Code flow, response_mode=jwt",
        response_type="code",
        grant_type=GRANT_AUTHORIZATION_CODE,
        signing_alg="PS256",
        flows=(Flow("jwt", "jwt", "jwt resolves to query.jwt for response_type=code: ?response=<JWT>"),),
        notes=("On the consent page, press Cancel: access_denied comes back as a signed JWT too.",),
    ),
    DemoClient(
        client_id="demo-form-post-jwt",
        name="Code flow, form_post.jwt",
        response_type="code",
        grant_type=GRANT_AUTHORIZATION_CODE,
        signing_alg="ES256",
        flows=(Flow("form-post-jwt", "form_post.jwt", "an auto-submitted form POSTs response=<JWT> to the callback"),),
    ),
    DemoClient(
        client_id="demo-fragment-jwt",
        name="Code flow, fragment.jwt",
        response_type="code",
        grant_type=GRANT_AUTHORIZATION_CODE,
        signing_alg="EdDSA",
        flows=(
            Flow(
                "fragment-jwt",
                "fragment.jwt",
                "#response=<JWT>: a script on the callback page sends the fragment to the relying party",
            ),
        ),
    ),
    DemoClient(
        client_id="demo-hybrid-encrypted",
        name="Hybrid flow code id_token, encrypted to the relying party's key",
        response_type="code id_token",
        grant_type=GRANT_OPENID_HYBRID,
        # RS256 signs with DOT's OIDC key (the one that signs ID tokens): no JARM server key needed.
        signing_alg="RS256",
        encryption_alg="RSA-OAEP-256",
        encryption_enc="A256GCM",
        flows=(
            Flow(
                "fragment-jwt",
                "fragment.jwt",
                "#response=<JWE>: signed by the server, then encrypted to the relying party's RSA key",
            ),
        ),
    ),
    DemoClient(
        client_id="demo-dir-secret",
        name="Code flow, encrypted with a key derived from the client secret",
        response_type="code",
        grant_type=GRANT_AUTHORIZATION_CODE,
        signing_alg="ES256",
        encryption_alg="dir",
        encryption_enc="A128CBC-HS256",
        # dir + A128CBC-HS256 needs 32 octets: SHA-256 of a secret of at least 32 characters.
        secret="demo-dir-secret-derives-the-A128CBC-HS256-key",
        flows=(
            Flow(
                "query-jwt",
                "query.jwt",
                "?response=<JWE>: the content key is SHA-256 of the client secret (OpenID Connect Core 10.2)",
            ),
        ),
    ),
    DemoClient(
        client_id="demo-require-jarm",
        name="Client that requires JARM",
        response_type="code",
        grant_type=GRANT_AUTHORIZATION_CODE,
        signing_alg="PS256",
        require_jarm=True,
        flows=(
            Flow("query-jwt", "query.jwt", "?response=<JWT>"),
            Flow("query", "query", "refused before consent: invalid_request, itself delivered as a signed JWT"),
        ),
    ),
)

CLIENTS_BY_ID = {client.client_id: client for client in DEMO_CLIENTS}


# Dynamic client registration (RFC 7591) ---------------------------------------------------

#: What the dynamically registered client asks for: signed PS256, encrypted to the relying
#: party's RSA key. Its JWK Set holds that encryption key only (use "enc").
DYNAMIC_SIGNING_ALG = "PS256"
DYNAMIC_ENCRYPTION_ALG = "RSA-OAEP-256"
DYNAMIC_ENCRYPTION_ENC = "A256GCM"
DYNAMIC_FLOW = Flow("jwt", "jwt", "?response=<JWE>: jwt resolves to query.jwt for response_type=code")


def dynamic_registration_request(redirect_uri: str, *, relying_party_jwks: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7591 registration request: DOT's members and the JARM client metadata."""
    return {
        "client_name": "Dynamically registered demo client",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "authorization_signed_response_alg": DYNAMIC_SIGNING_ALG,
        "authorization_encrypted_response_alg": DYNAMIC_ENCRYPTION_ALG,
        "authorization_encrypted_response_enc": DYNAMIC_ENCRYPTION_ENC,
        "jwks": relying_party_jwks,
        "response_modes": ["jwt", "query.jwt"],
    }


def registered_client(local_name: str, answer: dict[str, Any]) -> DemoClient:
    """The client the server registered, as its answer describes it (what the relying party expects)."""
    return DemoClient(
        client_id=str(answer["client_id"]),
        name=str(answer.get("client_name") or "Dynamically registered client"),
        response_type="code",
        grant_type=GRANT_AUTHORIZATION_CODE,
        signing_alg=str(answer.get("authorization_signed_response_alg", "")),
        encryption_alg=str(answer.get("authorization_encrypted_response_alg", "")),
        encryption_enc=str(answer.get("authorization_encrypted_response_enc", "")),
        # Registered clients have no OpenID Connect signing algorithm at DOT: no openid scope.
        scope="read",
        secret=str(answer.get("client_secret", "")),
        flows=(DYNAMIC_FLOW,),
        local_name=local_name,
    )
