"""The demo relying party's checks (example_project/relying_party/verify.py) catch what they must.

Tokens are made here with joserfc, like a server would make them, then broken one way at a time:
each break must fail its own step, with the others still reporting what they saw.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

import pytest
from joserfc import jwe, jws
from joserfc.jwk import ECKey, OctKey, RSAKey

from example_project.relying_party.verify import (
    FAIL,
    PASS,
    SKIP,
    Expectation,
    check_id_token,
    derive_secret_key,
    redact,
    shorten,
    verify_response,
)
from tests import rp

ISSUER = "https://as.example/o"
CLIENT_ID = "client-1"
SECRET = "a-client-secret-of-more-than-thirty-two-characters"
STATE = "state-123"
NOW = 1_800_000_000

SERVER_KEY = ECKey.generate_key("P-256", parameters={"kid": "server-es256"})
OTHER_SERVER_KEY = ECKey.generate_key("P-256", parameters={"kid": "server-es256"})
JWKS = {"keys": [{**SERVER_KEY.as_dict(private=False), "use": "sig", "alg": "ES256"}]}
CLIENT_KEY = RSAKey.generate_key(2048, parameters={"kid": "client-enc"})
PENDING = {STATE: {"client_id": CLIENT_ID, "nonce": "n-1", "verifier": "v", "started": "12:00:00 UTC"}}


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "aud": CLIENT_ID, "exp": NOW + 120, "iat": NOW, "code": "the-code-123", "state": STATE}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(
    payload: dict[str, Any], *, key: Any = SERVER_KEY, alg: str = "ES256", kid: str | None = SERVER_KEY.kid
) -> str:
    header = {"alg": alg, **({"kid": kid} if kid else {})}
    return jws.serialize_compact(header, json.dumps(payload).encode(), key, algorithms=[alg])


def encrypt(inner: str, key: Any, *, alg: str, enc: str, **header: Any) -> str:
    protected = {"alg": alg, "enc": enc, "cty": "JWT", **header}
    return jwe.encrypt_compact(protected, inner.encode(), key, algorithms=[alg, enc])


def expectation(**changes: Any) -> Expectation:
    fields: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT_ID, "signing_alg": "ES256", "client_secret": SECRET}
    fields.update(changes)
    return Expectation(**fields)


def outcomes(token: str, expected: Expectation | None = None, pending: Any = PENDING) -> list[str]:
    verification = verify_response(token, expected or expectation(), jwks=JWKS, pending=pending, now=NOW)
    return [check.outcome for check in verification.checks]


def test_a_good_signed_response_passes_every_check() -> None:
    verification = verify_response(sign(claims()), expectation(), jwks=JWKS, pending=PENDING, now=NOW)

    assert [(check.number, check.outcome) for check in verification.checks] == [
        (1, SKIP),
        (2, PASS),
        (3, PASS),
        (4, PASS),
        (5, PASS),
        (6, PASS),
    ]
    assert verification.ok
    assert verification.claims == claims()
    assert verification.flow == {**PENDING[STATE], "state": STATE}
    # The claims are shown with the code shortened, the JWS header in full.
    shown = dict(verification.checks[1].documents)
    assert '"code": "the-code…"' in next(iter(shown.values()))
    assert "server-es256" in dict(verification.checks[4].documents)["JWS header"]


@pytest.mark.parametrize(
    ("token", "failing_step"),
    [
        pytest.param(sign(claims(iss="https://evil.example/o")), 2, id="another-issuer"),
        pytest.param(sign(claims(iss=None)), 2, id="no-issuer"),
        pytest.param(sign(claims(aud="client-2")), 3, id="another-audience"),
        pytest.param(sign(claims(exp=NOW - 1)), 4, id="expired"),
        pytest.param(sign(claims(exp=str(NOW + 60))), 4, id="exp-not-a-number"),
        pytest.param(sign(claims(), key=OTHER_SERVER_KEY), 5, id="signed-by-another-key"),
        pytest.param(sign(claims(), kid="unknown"), 5, id="unknown-kid"),
        pytest.param(sign(claims(), kid=None), 5, id="no-kid"),
        pytest.param(sign(claims(state="forged")), 6, id="unknown-state"),
        pytest.param(sign(claims(state=None)), 6, id="no-state"),
    ],
)
def test_each_broken_claim_fails_its_own_step(token: str, failing_step: int) -> None:
    result = outcomes(token)

    assert result[failing_step - 1] == FAIL
    assert [outcome for number, outcome in enumerate(result, 1) if number not in (1, failing_step)] == [PASS] * 4


def test_a_changed_payload_fails_the_signature() -> None:
    header, _, signature = sign(claims()).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(code="attacker-code")).encode()).rstrip(b"=").decode()

    verification = verify_response(f"{header}.{forged}.{signature}", expectation(), jwks=JWKS, pending=PENDING, now=NOW)

    assert verification.checks[4].outcome == FAIL
    assert "does not verify" in verification.checks[4].why
    assert not verification.ok
    assert verification.claims is None


def test_only_the_registered_algorithm_is_accepted() -> None:
    # The server's key, the right kid, a valid signature: but the client registered PS256.
    assert outcomes(sign(claims()), expectation(signing_alg="PS256"))[4] == FAIL
    unsigned = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in ({"alg": "none", "kid": "server-es256"}, claims())
    )
    assert outcomes(unsigned + ".")[4] == FAIL


def test_hmac_signatures_use_the_client_secret() -> None:
    token = sign(claims(), key=OctKey.import_key(SECRET.encode()), alg="HS256", kid="client-secret")
    assert outcomes(token, expectation(signing_alg="HS256")) == [SKIP, PASS, PASS, PASS, PASS, PASS]
    assert outcomes(token, expectation(signing_alg="HS256", client_secret=SECRET + "x"))[4] == FAIL


def test_a_state_of_another_client_fails() -> None:
    pending = {STATE: {**PENDING[STATE], "client_id": "client-2"}}
    verification = verify_response(sign(claims()), expectation(), jwks=JWKS, pending=pending, now=NOW)
    assert verification.checks[5].outcome == FAIL
    assert verification.flow is None
    assert not verification.ok


def test_an_error_response_is_verified_like_a_success() -> None:
    token = sign(claims(code=None, error="access_denied", error_description="The user said no"))
    verification = verify_response(token, expectation(), jwks=JWKS, pending=PENDING, now=NOW)
    assert verification.ok
    assert verification.claims is not None
    assert verification.claims["error"] == "access_denied"


# Encryption -------------------------------------------------------------------------------


def rsa_expectation(**changes: Any) -> Expectation:
    fields = {"encryption_alg": "RSA-OAEP-256", "encryption_enc": "A256GCM", "decryption_key": CLIENT_KEY}
    return expectation(**{**fields, **changes})


def test_a_response_encrypted_to_the_client_key_is_decrypted_then_checked() -> None:
    token = encrypt(sign(claims()), CLIENT_KEY, alg="RSA-OAEP-256", enc="A256GCM", kid="client-enc")
    verification = verify_response(token, rsa_expectation(), jwks=JWKS, pending=PENDING, now=NOW)

    assert [check.outcome for check in verification.checks] == [PASS] * 6
    assert '"alg": "RSA-OAEP-256"' in dict(verification.checks[0].documents)["JWE header"]
    assert verification.claims == claims()


@pytest.mark.parametrize(("alg", "enc"), [("dir", "A128CBC-HS256"), ("dir", "A256GCM"), ("A256KW", "A128GCM")])
def test_a_response_encrypted_with_the_secret_derived_key_is_decrypted(alg: str, enc: str) -> None:
    octets, how = derive_secret_key(SECRET, alg, enc)
    token = encrypt(sign(claims()), OctKey.import_key(octets), alg=alg, enc=enc)

    assert outcomes(token, expectation(encryption_alg=alg, encryption_enc=enc)) == [PASS] * 6
    assert "client secret" in how


@pytest.mark.parametrize(
    ("alg", "enc"),
    [
        *itertools.product(["dir"], ["A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "A128GCM", "A256GCM"]),
        *itertools.product(["A128KW", "A192KW", "A256KW", "A128GCMKW", "A256GCMKW"], ["A128GCM"]),
    ],
)
def test_the_secret_derivation_matches_openid_connect_core(alg: str, enc: str) -> None:
    assert derive_secret_key(SECRET, alg, enc)[0] == rp.derive_secret_key(SECRET, alg, enc)


@pytest.mark.parametrize(
    ("make_token", "expected"),
    [
        # A plain JWS where the client registered encryption: a downgrade.
        pytest.param(lambda: sign(claims()), rsa_expectation(), id="downgrade-to-jws"),
        # Encrypted to a key the client does not have.
        pytest.param(
            lambda: encrypt(sign(claims()), RSAKey.generate_key(2048), alg="RSA-OAEP-256", enc="A256GCM"),
            rsa_expectation(),
            id="another-recipient",
        ),
        # Other algorithms than the registered ones.
        pytest.param(
            lambda: encrypt(sign(claims()), CLIENT_KEY, alg="RSA-OAEP-256", enc="A128GCM"),
            rsa_expectation(),
            id="another-enc",
        ),
        # A JWE where the client registered none.
        pytest.param(
            lambda: encrypt(sign(claims()), CLIENT_KEY, alg="RSA-OAEP-256", enc="A256GCM"),
            expectation(),
            id="unexpected-encryption",
        ),
        # The secret-derived key of another secret.
        pytest.param(
            lambda: encrypt(
                sign(claims()),
                OctKey.import_key(derive_secret_key("another-secret-of-thirty-two-chars!", "dir", "A128CBC-HS256")[0]),
                alg="dir",
                enc="A128CBC-HS256",
            ),
            expectation(encryption_alg="dir", encryption_enc="A128CBC-HS256"),
            id="another-secret",
        ),
        pytest.param(lambda: "not.a.jwt.at.all.really", expectation(), id="garbage"),
    ],
)
def test_decryption_problems_fail_step_one_and_nothing_is_trusted(make_token: Any, expected: Expectation) -> None:
    verification = verify_response(make_token(), expected, jwks=JWKS, pending=PENDING, now=NOW)

    assert verification.checks[0].outcome == FAIL
    assert verification.checks[0].why
    assert [check.outcome for check in verification.checks[1:]] == [FAIL] * 5
    assert verification.claims is None
    assert not verification.ok


def test_a_nested_jwt_must_say_cty_jwt() -> None:
    protected = {"alg": "RSA-OAEP-256", "enc": "A256GCM"}
    token = jwe.encrypt_compact(protected, sign(claims()).encode(), CLIENT_KEY, algorithms=["RSA-OAEP-256", "A256GCM"])
    verification = verify_response(token, rsa_expectation(), jwks=JWKS, pending=PENDING, now=NOW)
    assert verification.checks[0].outcome == FAIL
    assert "cty" in verification.checks[0].why


# ID tokens and display --------------------------------------------------------------------


def test_id_tokens_are_checked_with_the_session_nonce() -> None:
    now = int(time.time())
    token = sign({"iss": ISSUER, "aud": CLIENT_ID, "exp": now + 60, "iat": now, "sub": "1", "nonce": "n-1"})
    good = check_id_token(token, jwks=JWKS, issuer=ISSUER, client_id=CLIENT_ID, nonce="n-1", title="ID token")
    assert good.outcome == PASS, good.why
    bad = check_id_token(token, jwks=JWKS, issuer=ISSUER, client_id=CLIENT_ID, nonce="n-2", title="ID token")
    assert bad.outcome == FAIL
    assert "nonce" in bad.why


def c_hash_of(code: str) -> str:
    """OpenID Connect Core 3.3.2.11 for ES256, computed here: the left half of SHA-256."""
    import hashlib

    return base64.urlsafe_b64encode(hashlib.sha256(code.encode()).digest()[:16]).rstrip(b"=").decode()


def test_a_hybrid_id_token_must_bind_the_code_with_c_hash() -> None:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": CLIENT_ID, "exp": now + 60, "iat": now, "sub": "1", "nonce": "n-1"}
    common = {"jwks": JWKS, "issuer": ISSUER, "client_id": CLIENT_ID, "nonce": "n-1", "title": "ID token"}
    good = check_id_token(sign({**base, "c_hash": c_hash_of("the-code")}), code="the-code", **common)
    assert good.outcome == PASS, good.why
    assert "c_hash binds the code" in good.why
    for token in (sign(base), sign({**base, "c_hash": c_hash_of("another-code")})):
        bad = check_id_token(token, code="the-code", **common)
        assert bad.outcome == FAIL
        assert bad.why == "The c_hash is wrong."
    # From the token endpoint there is no code beside it: c_hash is not asked for.
    assert check_id_token(sign(base), **common).outcome == PASS


def test_iat_in_the_past_reads_issued_not_expired() -> None:
    verification = verify_response(sign(claims(iat=NOW - 2)), expectation(), jwks=JWKS, pending=PENDING, now=NOW)
    rows = dict(verification.checks[3].rows)
    assert rows["iat"] == "1799999998 (2027-01-15 07:59:58 UTC, issued 2 s ago)"
    assert rows["exp"] == "1800000120 (2027-01-15 08:02:00 UTC, in 120 s)"


def test_secrets_are_shortened_for_display() -> None:
    assert shorten("0123456789abcdef") == "01234567…"
    assert shorten("short") == "short"
    assert redact({"code": "0123456789", "state": "0123456789", "access_token": "abcdefghijk"}) == {
        "code": "01234567…",
        "state": "0123456789",
        "access_token": "abcdefgh…",
    }
