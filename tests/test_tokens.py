from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from jwcrypto import jwk

from django_jarm.exceptions import ConfigurationError
from django_jarm.keys import SigningKey
from django_jarm.tokens import response_claims, sign


def test_claims_order_numbers_and_reserved_names():
    claims = response_claims(
        [("access_token", "at"), ("expires_in", "3600"), ("iss", "https://evil.example"), ("state", "s")],
        issuer="https://as.example",
        client_id="client-1",
        lifetime=120,
        now=1_000,
    )
    assert claims == {
        "iss": "https://as.example",
        "aud": "client-1",
        "exp": 1_120,
        "iat": 1_000,
        "access_token": "at",
        "expires_in": 3600,
        "state": "s",
    }


def test_iat_can_be_left_out():
    assert "iat" not in response_claims([], issuer="i", client_id="c", lifetime=10, include_iat=False)


def test_sign_produces_a_jws_another_library_verifies():
    private = jwk.JWK.generate(kty="EC", crv="P-256")
    token = sign({"iss": "i", "aud": "c", "exp": 2_000_000_000}, SigningKey("ES256", "kid-1", private))
    public = ECKey.import_key(private.export_public(as_dict=True))
    decoded = jwt.decode(token, public, algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "kid": "kid-1"}
    assert decoded.claims["aud"] == "c"


def test_signing_failure_does_not_leak_jwcrypto():
    wrong = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    with pytest.raises(ConfigurationError) as caught:
        sign({"a": 1}, SigningKey("ES256", "kid-2", wrong))
    assert "kid-2" in str(caught.value)
    assert wrong.export_private() not in str(caught.value)
