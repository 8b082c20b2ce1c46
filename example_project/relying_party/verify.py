"""What a client must check before it trusts a JARM response (JARM section 2.4), step by step.

Written with joserfc, a JOSE library independent of the authorization server's (django_jarm
uses jwcrypto), and without Django: the functions here take the token and what the client
knows, and return every check with its outcome and the reason, for display.

The steps, in the order the demo shows them:

1. decrypt, when the response is a JWE (with the relying party's private key, or with the key
   derived from the client secret, OpenID Connect Core 10.2);
2. ``iss`` is the issuer the client expects (from discovery);
3. ``aud`` is the client's own client_id;
4. ``exp`` is in the future;
5. the signature, with the server key named by ``kid`` in the server's JWK Set (or the client
   secret for HS256/384/512), and with the algorithm the client registered;
6. ``state`` is the one this browser session started the flow with.

A real client stops at the first failure. The demo runs every check it can, so that a broken
response shows everything that is wrong with it; the verdict is the same.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import JWKRegistry, Key, OctKey

# The JARM and FAPI name of Ed25519 signatures; joserfc prefers RFC 9864's "Ed25519".
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

PASS, FAIL, SKIP = "pass", "fail", "skip"

#: Claims whose values are secrets (or bearer credentials): shown shortened.
SECRET_CLAIMS = frozenset({"code", "access_token", "refresh_token", "id_token"})

#: Key sizes (octets) of the secret-derived JWE algorithms, OpenID Connect Core 10.2.
_KEY_WRAP_OCTETS = {"A128KW": 16, "A192KW": 24, "A256KW": 32, "A128GCMKW": 16, "A192GCMKW": 24, "A256GCMKW": 32}
_DIR_OCTETS = {
    "A128CBC-HS256": 32,
    "A192CBC-HS384": 48,
    "A256CBC-HS512": 64,
    "A128GCM": 16,
    "A192GCM": 24,
    "A256GCM": 32,
}
_HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def shorten(value: Any, keep: int = 8) -> str:
    """The first ``keep`` characters of a secret and an ellipsis: enough to recognise it."""
    text = str(value)
    return text if len(text) <= keep else text[:keep] + "…"


def redact(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with secrets and tokens shortened."""
    return {name: shorten(value) if name in SECRET_CLAIMS else value for name, value in values.items()}


def pretty(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def when(timestamp: int, now: int, *, past: str = "expired") -> str:
    """``timestamp`` as a date and as a distance from ``now``: "in 118 s", or "<past> 2 s ago"."""
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = timestamp - now
    distance = f"in {delta} s" if delta >= 0 else f"{past} {-delta} s ago"
    return f"{timestamp} ({moment}, {distance})"


def half_hash(value: str, alg: str) -> str | None:
    """OpenID Connect Core 3.3.2.11: base64url of the left half of the hash of ``value``.

    The hash is the one of the ID token's ``alg`` (SHA-256 for *256…); EdDSA with Ed25519 uses
    SHA-512. None for an algorithm without one.
    """
    bits = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
    function = hashlib.sha512 if alg == "EdDSA" else bits.get(alg[-3:])
    if function is None:
        return None
    digest = function(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def derive_secret_key(secret: str, alg: str, enc: str) -> tuple[bytes, str]:
    """The symmetric key for ``alg``/``enc`` derived from the client secret (OIDC Core 10.2).

    SHA-256, SHA-384 or SHA-512 of the UTF-8 secret, whichever is long enough, keeping the
    left-most octets the key needs. Returns the key and a description of the derivation.
    """
    length = _DIR_OCTETS[enc] if alg == "dir" else _KEY_WRAP_OCTETS[alg]
    hash_name = "SHA-256" if length <= 32 else ("SHA-384" if length <= 48 else "SHA-512")
    digest = hashlib.new(hash_name.replace("-", "").lower(), secret.encode("utf-8")).digest()
    return digest[:length], f"the left-most {length} octets of {hash_name}(client secret)"


def _b64_json(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error) as error:
        raise ValueError(f"not base64url-encoded JSON ({error})") from error
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@dataclass
class Check:
    """One step and its outcome, with what it compared and the documents it looked at."""

    number: int | None
    title: str
    outcome: str = SKIP
    why: str = ""
    #: (label, value) facts: what was expected and what was found.
    rows: list[tuple[str, str]] = field(default_factory=list)
    #: (label, pretty-printed JSON) documents: headers, claims, keys.
    documents: list[tuple[str, str]] = field(default_factory=list)

    def passed(self, why: str) -> Check:
        self.outcome, self.why = PASS, why
        return self

    def failed(self, why: str) -> Check:
        self.outcome, self.why = FAIL, why
        return self

    def skipped(self, why: str) -> Check:
        self.outcome, self.why = SKIP, why
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "outcome": self.outcome,
            "why": self.why,
            "rows": [list(row) for row in self.rows],
            "documents": [list(document) for document in self.documents],
        }


@dataclass(frozen=True)
class Expectation:
    """What the client knows before it reads the response: its registration and the issuer."""

    issuer: str
    client_id: str
    #: The registered authorization_signed_response_alg: any other algorithm is refused.
    signing_alg: str
    encryption_alg: str = ""
    encryption_enc: str = ""
    client_secret: str = ""
    #: The client's private key, for asymmetric encryption (RSA-OAEP*, ECDH-ES*).
    decryption_key: Key | None = None


@dataclass
class Verification:
    checks: list[Check]
    #: The claims, once the signature verified (None otherwise).
    claims: dict[str, Any] | None = None
    #: The flow of this browser session that the response's ``state`` belongs to.
    flow: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(check.outcome != FAIL for check in self.checks) and self.claims is not None


def _decrypt(token: str, expected: Expectation) -> tuple[Check, str | None]:
    """Step 1: the nested JWS inside a JWE, or the token itself when it is not encrypted."""
    check = Check(1, "Decrypt the response")
    parts = token.split(".")
    if len(parts) == 3:
        if expected.encryption_alg:
            return check.failed(
                f"The client registered encryption ({expected.encryption_alg}), but the response is a plain JWS. "
                "Refuse it: accepting it would let an attacker downgrade the protection."
            ), None
        return check.skipped("Not encrypted: a JWS (three segments), and the client registered no encryption."), token
    if len(parts) != 5:
        return check.failed(f"Neither a compact JWS nor a compact JWE ({len(parts)} segments)."), None
    try:
        header = _b64_json(parts[0])
    except ValueError as error:
        return check.failed(f"The JWE header is {error}."), None
    check.documents.append(("JWE header", pretty(header)))
    alg, enc = header.get("alg"), header.get("enc")
    check.rows += [
        ("alg", f"{alg} (registered: {expected.encryption_alg or 'no encryption'})"),
        ("enc", f"{enc} (registered: {expected.encryption_enc or '-'})"),
    ]
    if not expected.encryption_alg:
        return check.failed("The response is encrypted, but the client registered no encryption."), None
    if alg != expected.encryption_alg or enc != expected.encryption_enc:
        return check.failed("The JWE algorithms are not the ones the client registered."), None
    if str(header.get("cty", "")).upper() != "JWT":
        return check.failed('A nested JWT must say so: the JWE header needs "cty": "JWT" (RFC 7519 5.2).'), None
    key: Key
    if alg in _KEY_WRAP_OCTETS or alg == "dir":
        octets, how = derive_secret_key(expected.client_secret, alg, enc)
        key = OctKey.import_key(octets)
        check.rows.append(("key", how))
    else:
        if expected.decryption_key is None:
            return check.failed("The client has no private key for this algorithm."), None
        key = expected.decryption_key
        check.rows.append(("key", f"the relying party's private key, kid {key.kid}"))
        if header.get("kid") not in (None, key.kid):
            return check.failed(f"Encrypted to kid {header['kid']}, which is not the relying party's key."), None
    try:
        decrypted = jwe.decrypt_compact(token, key, algorithms=[alg, enc])
    except (JoseError, ValueError) as error:
        return check.failed(f"Decryption failed: {type(error).__name__}: {error}"), None
    inner = decrypted.plaintext.decode("ascii", errors="replace") if decrypted.plaintext else ""
    check.rows.append(("plaintext", f"a JWS of {len(inner)} characters ({shorten(inner, 12)})"))
    return check.passed("Decrypted; the plaintext is the signed JWT checked below."), inner


def verify_response(
    token: str,
    expected: Expectation,
    *,
    jwks: Mapping[str, Any],
    pending: Mapping[str, Mapping[str, Any]],
    now: int | None = None,
) -> Verification:
    """Run the six checks on ``token`` (the ``response`` parameter).

    ``jwks`` is the server's JWK Set (fetched from ``jwks_uri`` in discovery); ``pending`` maps
    the ``state`` of each flow this browser session started to what the client kept about it.
    """
    now = int(time.time()) if now is None else now
    decrypt, inner = _decrypt(token, expected)
    checks = [decrypt]
    titles = {
        2: "iss is the expected issuer",
        3: "aud is this client's client_id",
        4: "exp is in the future",
        5: "Signature, with the server key named by kid",
        6: "state is the one this browser session started with",
    }
    header: dict[str, Any] = {}
    claims: dict[str, Any] = {}
    unreadable = ""
    if inner is None:
        unreadable = "Not run: the response could not be decrypted."
    else:
        segments = inner.split(".")
        try:
            if len(segments) != 3:
                raise ValueError(f"not a compact JWS ({len(segments)} segments)")
            header, claims = _b64_json(segments[0]), _b64_json(segments[1])
        except ValueError as error:
            unreadable = f"Not run: the signed JWT is unreadable: {error}."
    if unreadable:
        checks += [Check(number, title).failed(unreadable) for number, title in titles.items()]
        return Verification(checks)

    iss = Check(2, titles[2], rows=[("expected", expected.issuer), ("iss", str(claims.get("iss", "(absent)")))])
    label = "Claims (read from the payload; trusted only once the signature verifies)"
    iss.documents.append((label, pretty(redact(claims))))
    if claims.get("iss") == expected.issuer:
        iss.passed("The issuer the client sent the user to, byte for byte (issuer in discovery).")
    else:
        iss.failed("Another issuer: this response was not produced by the server the flow started at.")
    checks.append(iss)

    aud_value = claims.get("aud")
    aud = Check(3, titles[3], rows=[("expected", expected.client_id), ("aud", json.dumps(aud_value))])
    if aud_value == expected.client_id or (isinstance(aud_value, list) and expected.client_id in aud_value):
        aud.passed("The response is meant for this client.")
    else:
        aud.failed("The response was issued to another client: do not use it.")
    checks.append(aud)

    exp_value = claims.get("exp")
    exp = Check(4, titles[4], rows=[("now", when(now, now))])
    if isinstance(exp_value, int) and not isinstance(exp_value, bool):
        exp.rows.append(("exp", when(exp_value, now)))
        if exp_value > now:
            exp.passed(f"Still valid for {exp_value - now} s.")
        else:
            exp.failed("Expired: a late (or replayed) response.")
    else:
        exp.rows.append(("exp", json.dumps(exp_value)))
        exp.failed("exp must be a number (seconds since the epoch).")
    if isinstance(claims.get("iat"), int):
        exp.rows.append(("iat", when(claims["iat"], now, past="issued")))
    checks.append(exp)

    signature, verified = _check_signature(inner, header, expected, jwks)
    checks.append(signature)

    state = Check(6, titles[6])
    flow = None
    received = claims.get("state")
    state.rows.append(("state in the response", json.dumps(received)))
    if not isinstance(received, str) or not received:
        state.failed("No state in the response: it cannot be tied to a request this browser made.")
    elif received not in pending:
        state.rows.append(("states this session waits for", ", ".join(pending) or "(none)"))
        state.failed(
            "Not a state this browser session is waiting for: unknown, already used, or sent to another browser "
            "(a CSRF or injection attempt looks like this)."
        )
    elif pending[received].get("client_id") != expected.client_id:
        state.failed(f"This state belongs to a flow of client {pending[received].get('client_id')}.")
    else:
        flow = {**pending[received], "state": received}
        state.rows.append(("state kept in the session", json.dumps(received)))
        started = flow.get("started")
        state.passed(
            "Matches the flow this browser started"
            + (f" at {started}" if started else "")
            + "; it is now used up (a replay of this response fails here)."
        )
    checks.append(state)
    return Verification(checks, claims=dict(claims) if verified else None, flow=flow)


def _check_signature(
    inner: str, header: dict[str, Any], expected: Expectation, jwks: Mapping[str, Any]
) -> tuple[Check, bool]:
    check = Check(5, "Signature, with the server key named by kid")
    check.documents.append(("JWS header", pretty(header)))
    alg, kid = header.get("alg"), header.get("kid")
    check.rows += [("alg", f"{alg} (registered: {expected.signing_alg})"), ("kid", str(kid) if kid else "(absent)")]
    if not alg or alg == "none":
        return check.failed("Unsigned: never accept alg none."), False
    if alg != expected.signing_alg:
        return check.failed("Not the algorithm the client registered: refuse (algorithm confusion)."), False
    key: Key
    if alg in _HMAC_ALGS:
        key = OctKey.import_key(expected.client_secret.encode("utf-8"))
        check.rows.append(("key", "the client secret (HMAC)"))
    else:
        if not kid:
            return check.failed("No kid in the JWS header: the key cannot be chosen."), False
        matching = [jwk for jwk in jwks.get("keys", []) if isinstance(jwk, dict) and jwk.get("kid") == kid]
        if len(matching) != 1:
            return check.failed(
                f"{len(matching)} keys with this kid in the server's JWK Set "
                "(a client would fetch the JWK Set again once, in case the server rotated its keys)."
            ), False
        jwk = matching[0]
        if jwk.get("kty") != _KEY_TYPES.get(alg[:2]) or jwk.get("use", "sig") != "sig":
            return check.failed(f"The key with this kid is a {jwk.get('kty')} key for {jwk.get('use')}."), False
        try:
            key = JWKRegistry.import_key(jwk)
        except (JoseError, ValueError) as error:
            return check.failed(f"The published key is unusable: {error}"), False
        kind = f"{jwk.get('kty')} {jwk['crv']}" if jwk.get("crv") else str(jwk.get("kty"))
        check.rows.append(("key", f"the {kind} key with this kid in the server's JWK Set"))
    try:
        jws.deserialize_compact(inner, key, algorithms=[alg])
    except (JoseError, ValueError) as error:
        why = f"The signature does not verify ({type(error).__name__}): someone changed the response."
        return check.failed(why), False
    return check.passed(f"Verified with {alg}: the claims are exactly what the server signed."), True


def check_id_token(
    id_token: str,
    *,
    jwks: Mapping[str, Any],
    issuer: str,
    client_id: str,
    nonce: str | None,
    title: str,
    now: int | None = None,
    code: str | None = None,
) -> Check:
    """An OpenID Connect ID token: signature (by kid), iss, aud, exp and the session's nonce.

    ``code``: the code that came with it in a hybrid authorization response, which the token's
    ``c_hash`` must bind (OpenID Connect Core 3.3.2.11, 3.3.2.12).
    """
    now = int(time.time()) if now is None else now
    check = Check(None, title)
    segments = id_token.split(".")
    try:
        if len(segments) != 3:
            raise ValueError(f"not a compact JWS ({len(segments)} segments)")
        header, claims = _b64_json(segments[0]), _b64_json(segments[1])
    except ValueError as error:
        return check.failed(f"Unreadable: {error}.")
    check.documents += [("ID token header", pretty(header)), ("ID token claims", pretty(claims))]
    problems = []
    alg, kid = header.get("alg"), header.get("kid")
    matching = [jwk for jwk in jwks.get("keys", []) if isinstance(jwk, dict) and jwk.get("kid") == kid]
    if not alg or alg == "none" or alg in _HMAC_ALGS or len(matching) != 1:
        problems.append(f"no single server key for alg {alg}, kid {kid}")
    else:
        try:
            jws.deserialize_compact(id_token, JWKRegistry.import_key(matching[0]), algorithms=[alg])
        except (JoseError, ValueError) as error:
            problems.append(f"the signature does not verify ({type(error).__name__})")
    check.rows.append(("signature", f"{alg}, kid {kid}: " + ("bad" if problems else "verified")))
    aud = claims.get("aud")
    for name, shown, good in (
        ("iss", str(claims.get("iss")), claims.get("iss") == issuer),
        ("aud", json.dumps(aud), aud == client_id or (isinstance(aud, list) and client_id in aud)),
        ("exp", str(claims.get("exp")), isinstance(claims.get("exp"), int) and claims["exp"] > now),
        ("nonce", f"{claims.get('nonce')} (session: {nonce})", bool(nonce) and claims.get("nonce") == nonce),
        *(
            [
                (
                    "c_hash",
                    f"{claims.get('c_hash')} (of the code: {half_hash(code, str(alg))})",
                    _c_hash_ok(claims, code, alg),
                )
            ]
            if code is not None
            else []
        ),
    ):
        check.rows.append((name, shown if good else f"{shown}: wrong"))
        if not good:
            problems.append(f"the {name} is wrong")
    if problems:
        text = "; ".join(problems)
        return check.failed(text[0].upper() + text[1:] + ".")
    if code is not None:
        return check.passed(
            "Signed by the server, for this client, not expired, with this session's nonce, and its c_hash "
            "binds the code that came with it."
        )
    return check.passed("Signed by the server, for this client, not expired, and it carries this session's nonce.")


def _c_hash_ok(claims: Mapping[str, Any], code: str, alg: Any) -> bool:
    expected = half_hash(code, str(alg))
    return expected is not None and claims.get("c_hash") == expected
