"""``manage.py jarm_conformance``: every check fails on the misconfiguration it is there to catch.

Each test breaks one thing (a key without kid, an RSA-1024 key, a lifetime beyond the bound, a
missing algorithm list, a client allowed a mode the server does not advertise…) and asserts the
check named after the conformance suite's condition reports it, with its fix; the same server
unbroken passes. Checks the suite reports as warnings (WARN) are shown to warn.
"""

from __future__ import annotations

import http.server
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from jwcrypto import jwk
from jwcrypto.common import base64url_encode
from oauth2_provider.models import get_access_token_model, get_grant_model, get_id_token_model, get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import SettingsScopes

from django_jarm import tokens, views
from django_jarm.authorization import ResponsePlanner
from django_jarm.client_keys import EncryptionKey, derive_secret_key
from django_jarm.exceptions import Refusal
from django_jarm.keys import SigningKey, _dot_rsa_keys, encrypt_private_key, generate_server_key
from django_jarm.models import ClientSettings, ServerKey
from tests.conftest import serving

pytestmark = pytest.mark.django_db

Result = dict[str, str]
CLIENT_SECRET = "conformance-" + "s" * 60


def conformance(*args: str) -> tuple[list[Result], CommandError | None]:
    """Run the command with ``--json``: (its results, the CommandError it raised or None)."""
    out = io.StringIO()
    try:
        call_command("jarm_conformance", "--json", *args, stdout=out)
    except CommandError as exc:
        return json.loads(out.getvalue())["results"], exc
    return json.loads(out.getvalue())["results"], None


def statuses(results: list[Result], check: str, **where: str) -> set[str]:
    return {
        r["status"] for r in results if r["check"] == check and all(r[name] == value for name, value in where.items())
    }


def rows(results: list[Result], check: str, status: str) -> list[Result]:
    return [r for r in results if r["check"] == check and r["status"] == status]


@pytest.fixture
def es256_client(make_app: Callable[..., Any]) -> Any:
    """An ES256 code client (consent page on) with an active ES256 server key."""
    generate_server_key("ES256")
    return make_app(
        "code", client_id="es256-client", skip_authorization=False, jarm={"authorization_signed_response_alg": "ES256"}
    )


# The well-configured server and client pass -------------------------------------------------------


def test_a_well_configured_server_and_client_pass(es256_client: Any) -> None:
    results, error = conformance()

    assert error is None
    assert {r["status"] for r in results} == {"PASS"}
    flows = {(r["mode"], r["outcome"]) for r in results if r["client_id"] == "es256-client" and r["mode"]}
    assert flows == {
        (mode, outcome)
        for mode in ("query.jwt", "fragment.jwt", "form_post.jwt")
        for outcome in ("success", "access_denied", "invalid_scope")
    }
    for check in (
        "CheckDiscEndpointResponseModesSupportedContainsJwt",
        "CheckDiscEndpointAuthSignAlgValuesIsJsonArray",
        "CheckDiscEndpointAuthEncryptAlgValuesIsJsonArray",
        "CheckDiscEndpointAuthEncryptEncValuesIsJsonArray",
        "CheckForKeyIdInServerJWKs",
        "FAPI2FinalEnsureMinimumServerKeyLength",
        "CheckServerJWKsUniqueKidAndAlg",
        "CheckServerJWKsAlgMatchesKeyType",
    ):
        assert statuses(results, check) == {"PASS"}, check
    for check in (
        "ExtractJARMFromURLQuery",
        "RejectNonJarmResponsesInUrlQuery",
        "ValidateJARMSignatureUsingKid",
        "ValidateJARMResponse",
        "ValidateJARMSigningAlg",
        "ValidateJARMExpRecommendations",
        "RequireIssInAuthorizationResponse",
    ):
        assert len(rows(results, check, "PASS")) == 9, check
    assert len(rows(results, "ValidateSuccessfulJARMResponseFromAuthorizationEndpoint", "PASS")) == 3
    assert len(rows(results, "EnsureErrorFromAuthorizationEndpointResponse", "PASS")) == 6
    assert len(rows(results, "CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint", "PASS")) == 6


def test_nothing_is_left_in_the_database(es256_client: Any, make_app: Callable[..., Any]) -> None:
    make_app("code", client_id="skips-consent", skip_authorization=True)
    models = (
        get_user_model(),
        Session,
        get_grant_model(),
        get_access_token_model(),
        get_refresh_token_model(),
        get_id_token_model(),
        ClientSettings,
        ServerKey,
    )
    before = {model: model.objects.count() for model in models}
    consent = dict(type(es256_client).objects.values_list("client_id", "skip_authorization"))

    results, error = conformance()

    assert error is None
    # access_denied needs the consent page: shown to the client that skips it, then rolled back.
    assert statuses(results, "EnsureErrorFromAuthorizationEndpointResponse", client_id="skips-consent") == {"PASS"}
    assert {model: model.objects.count() for model in models} == before
    assert dict(type(es256_client).objects.values_list("client_id", "skip_authorization")) == consent


def test_the_table_and_the_exit_status(es256_client: Any, make_app: Callable[..., Any]) -> None:
    make_app("code", client_id="no-key-client", jarm={"authorization_signed_response_alg": "PS256"})
    out = io.StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("jarm_conformance", stdout=out)

    table = out.getvalue()
    assert raised.value.returncode == 1  # manage.py exits with status 1
    assert "client es256-client\n" in table
    assert "  query.jwt     PASS  11 check(s) x 3 outcomes (access_denied, invalid_scope, success)" in table
    assert "client no-key-client\n" in table
    assert "  query.jwt     FAIL  ExtractJARMFromURLQuery: No JARM response in query" in table
    assert "The planner says: No active server key for PS256; run `manage.py jarm_keys generate --alg PS256`." in table
    assert "fix: Fix what the planner reports" in table
    assert table.rstrip().splitlines()[-1].startswith("Summary: ")


def test_only_the_named_clients(es256_client: Any, make_app: Callable[..., Any]) -> None:
    make_app("code", client_id="other-client", jarm={"authorization_signed_response_alg": "PS256"})

    results, error = conformance("--client", "es256-client")
    assert error is None
    assert {r["client_id"] for r in results} == {"", "es256-client"}

    results, error = conformance("--client", "es256-client", "--client", "nobody")
    assert error is not None
    assert rows(results, "CheckClientUsesAuthorizationEndpoint", "FAIL")[0]["client_id"] == "nobody"


def test_strict_fails_on_a_warning(es256_client: Any) -> None:
    with override_settings(JARM={"RESPONSE_LIFETIME": 1200}):
        assert conformance()[1] is None
        assert conformance("--strict")[1] is not None


# Server: discovery ------------------------------------------------------------------------------


def test_discovery_without_jwt_mode(es256_client: Any) -> None:
    with override_settings(JARM={"RESPONSE_MODES_SUPPORTED": ["query", "query.jwt", "fragment.jwt", "form_post.jwt"]}):
        results, error = conformance()

    assert error is not None
    failed = rows(results, "CheckDiscEndpointResponseModesSupportedContainsJwt", "FAIL")
    assert len(failed) == 2  # the OpenID and the RFC 8414 document
    assert 'Add "jwt" to JARM["RESPONSE_MODES_SUPPORTED"]' in failed[0]["fix"]


def _served_metadata(monkeypatch: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None]) -> None:
    """The discovery views serve their JARM members changed by ``change`` (as a proxy or override might)."""
    original = views.jarm_metadata

    def changed(request: Any) -> dict[str, Any]:
        data = original(request)
        change(data)
        return data

    monkeypatch.setattr(views, "jarm_metadata", changed)


@pytest.mark.parametrize(
    ("member", "check"),
    [
        ("authorization_signing_alg_values_supported", "CheckDiscEndpointAuthSignAlgValuesIsJsonArray"),
        ("authorization_encryption_alg_values_supported", "CheckDiscEndpointAuthEncryptAlgValuesIsJsonArray"),
        ("authorization_encryption_enc_values_supported", "CheckDiscEndpointAuthEncryptEncValuesIsJsonArray"),
    ],
)
def test_an_algorithm_list_that_is_null(
    es256_client: Any, monkeypatch: pytest.MonkeyPatch, member: str, check: str
) -> None:
    _served_metadata(monkeypatch, lambda data: data.update({member: None}))

    results, error = conformance()

    assert error is not None
    failed = rows(results, check, "FAIL")
    assert len(failed) == 2  # the OpenID and the RFC 8414 document
    assert failed[0]["reason"] == f"{member} is null, not an array of strings."


def test_a_missing_signing_alg_list(es256_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _served_metadata(monkeypatch, lambda data: data.pop("authorization_signing_alg_values_supported"))

    results, error = conformance()

    assert error is not None
    assert statuses(results, "CheckDiscEndpointAuthSignAlgValuesIsJsonArray") == {"PASS"}  # absent is allowed…
    failed = rows(results, "ValidateJARMSigningAlg", "FAIL")  # …but then no alg is listed
    assert len(failed) == 9
    assert failed[0]["reason"] == "Discovery has no authorization_signing_alg_values_supported list."


def test_a_signing_alg_not_in_discovery(es256_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _served_metadata(monkeypatch, lambda data: data.update({"authorization_signing_alg_values_supported": ["PS256"]}))

    results, _ = conformance()

    failed = rows(results, "ValidateJARMSigningAlg", "FAIL")
    assert len(failed) == 9
    assert failed[0]["reason"] == "ES256 is not in authorization_signing_alg_values_supported (PS256)."


@pytest.mark.parametrize(
    ("member", "check"),
    [
        ("authorization_encryption_alg_values_supported", "ValidateJARMEncryptionAlg"),
        ("authorization_encryption_enc_values_supported", "ValidateJARMEncryptionEnc"),
    ],
)
def test_a_missing_encryption_list(
    make_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, member: str, check: str
) -> None:
    generate_server_key("ES256")
    make_app("code", hash_client_secret=False, client_secret=CLIENT_SECRET, jarm=_secret_encryption())
    _served_metadata(monkeypatch, lambda data: data.pop(member))

    results, error = conformance()

    assert error is not None
    failed = rows(results, check, "FAIL")
    assert len(failed) == 9
    assert failed[0]["reason"] == f"Discovery has no {member} list."


# Server: keys ---------------------------------------------------------------------------------


def _insert_key(public: dict[str, Any], private: jwk.JWK, *, kid: str, alg: str, status: str = "next") -> None:
    """A key row as a faulty import or a hand-edited database would leave it (no validation)."""
    ServerKey.objects.create(
        kid=kid,
        alg=alg,
        kty=public["kty"],
        crv=public.get("crv", ""),
        status=status,
        public_jwk=public,
        private_jwk_encrypted=encrypt_private_key(private),
    )


def test_a_key_without_kid(es256_client: Any) -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    _insert_key({**key.export_public(as_dict=True), "alg": "ES256", "use": "sig"}, key, kid="no-kid-row", alg="ES256")

    results, error = conformance()

    assert error is not None
    failed = rows(results, "CheckForKeyIdInServerJWKs", "FAIL")
    assert len(failed) == 1  # one JWK Set, checked once
    assert failed[0]["reason"].startswith("1 of 3 published keys have no kid")


def test_an_rsa_1024_key(es256_client: Any) -> None:
    key = jwk.JWK.generate(kty="RSA", size=1024)
    public = {**key.export_public(as_dict=True), "alg": "PS256", "use": "sig", "kid": "short-rsa"}
    _insert_key(public, key, kid="short-rsa", alg="PS256")

    results, error = conformance()

    assert error is not None
    failed = rows(results, "FAPI2FinalEnsureMinimumServerKeyLength", "FAIL")
    assert "short-rsa (RSA 1024 bits, at least 2048)" in failed[0]["reason"]


def test_two_keys_with_the_same_kid_and_alg(es256_client: Any) -> None:
    active = ServerKey.objects.get(alg="ES256")
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    _insert_key({**key.export_public(as_dict=True), "alg": "ES256", "kid": active.kid}, key, kid="copy", alg="ES256")

    results, error = conformance()

    assert error is not None
    assert f"kid {active.kid} alg ES256" in rows(results, "CheckServerJWKsUniqueKidAndAlg", "FAIL")[0]["reason"]
    # The suite's signature check refuses the response too: two keys fit its kid.
    assert len(rows(results, "ValidateJARMSignatureUsingKid", "FAIL")) == 9


def test_an_alg_label_that_does_not_fit_the_key(es256_client: Any) -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-384")
    _insert_key({**key.export_public(as_dict=True), "alg": "ES256", "kid": "p384"}, key, kid="p384", alg="ES256")

    results, error = conformance()

    assert error is not None
    reason = rows(results, "CheckServerJWKsAlgMatchesKeyType", "FAIL")[0]["reason"]
    assert reason == "p384 is a EC P-384 key labelled ES256."


def test_a_signing_key_published_under_another_kid(es256_client: Any) -> None:
    active = ServerKey.objects.get(alg="ES256")
    ServerKey.objects.filter(pk=active.pk).update(public_jwk={**active.public_jwk, "kid": "renamed"})

    results, error = conformance()

    assert error is not None
    failed = rows(results, "ValidateJARMSignatureUsingKid", "FAIL")
    assert len(failed) == 9
    assert failed[0]["reason"] == f"0 keys of the served JWK Set fit kid {active.kid} and alg ES256 (exactly one must)."


def test_a_client_signed_with_hmac(make_app: Callable[..., Any]) -> None:
    make_app(
        "code",
        hash_client_secret=False,
        client_secret=CLIENT_SECRET,
        jarm={"authorization_signed_response_alg": "HS256"},
    )
    signing_algs = ["RS256", "ES256", "HS256"]

    with override_settings(JARM={"SIGNING_ALGS_SUPPORTED": signing_algs}):
        results, error = conformance()

    assert error is not None
    failed = rows(results, "ValidateJARMSignatureUsingKid", "FAIL")
    assert len(failed) == 9
    assert "never with the server's JWK Set" in failed[0]["reason"]


# Responses: lifetime -------------------------------------------------------------------------------


def test_a_lifetime_beyond_fifty_years(es256_client: Any) -> None:
    with override_settings(JARM={"RESPONSE_LIFETIME": 51 * 365 * 24 * 3600}):
        results, error = conformance()

    assert error is not None
    failed = rows(results, "ValidateJARMResponse", "FAIL")
    assert len(failed) == 9
    assert failed[0]["reason"] == "exp is more than 50 years ahead."
    assert 'JARM["RESPONSE_LIFETIME"]' in failed[0]["fix"]


@pytest.mark.parametrize(("lifetime", "reason"), [(1200, "at most 10 min + 5 min skew"), (5, "at least 10 s")])
def test_a_lifetime_outside_the_recommendation(es256_client: Any, lifetime: int, reason: str) -> None:
    with override_settings(JARM={"RESPONSE_LIFETIME": lifetime}):
        results, error = conformance()

    assert error is None  # the suite warns
    warned = rows(results, "ValidateJARMExpRecommendations", "WARN")
    assert len(warned) == 9
    assert reason in warned[0]["reason"]


# Responses: planners that break what the suite checks ------------------------------------------------


class ParameterOutsidePlanner(ResponsePlanner):
    """Sends ``iss`` beside the JWT as well (RFC 9207 style), which JARM modes must not."""

    def deliver(self, http_request: Any, plan: Any, params: Any) -> Any:
        response = super().deliver(http_request, plan, params)
        if response.status_code in (302, 303):
            parts = urlsplit(response["Location"])
            query = f"{parts.query}&iss=outside" if parts.query else "iss=outside"
            response["Location"] = urlunsplit(parts._replace(query=query))
        return response


class ExtraClaimPlanner(ResponsePlanner):
    def get_response_claims(self, plan: Any, params: Any) -> dict[str, Any]:
        return {**super().get_response_claims(plan, params), "tenant": "t1"}


class NoIssPlanner(ResponsePlanner):
    def get_response_claims(self, plan: Any, params: Any) -> dict[str, Any]:
        claims = super().get_response_claims(plan, params)
        claims.pop("iss")
        return claims


class RefusingPlanner(ResponsePlanner):
    def get_refusal(self, request: Any) -> Refusal | None:
        return Refusal("invalid_request", "Closed for maintenance.")


class RS256Planner(ResponsePlanner):
    """Signs every response with DOT's RS256 key, whatever the profile allows."""

    def plan(self, http_request: Any, application: Any, request: Any) -> Any:
        plan = super().plan(http_request, application, request)
        if plan.signing_key is None:
            return plan
        dot_key = _dot_rsa_keys()[0]
        return replace(plan, signing_key=SigningKey(alg="RS256", kid=dot_key.thumbprint(), jwk=dot_key))


class OtherSecretPlanner(ResponsePlanner):
    """Encrypts with a key derived from another secret than the client's."""

    def response_jwt(self, plan: Any, params: Any) -> str:
        key = plan.encryption_key
        secret = derive_secret_key("not-the-client-secret-" + "y" * 40, key.alg, key.enc)
        other = EncryptionKey(key.alg, key.enc, None, jwk.JWK(kty="oct", k=base64url_encode(secret)))
        return tokens.encrypt(self.sign(plan, params), other)


def _planner(name: str, **jarm: Any) -> Any:
    return override_settings(JARM={"RESPONSE_PLANNER": f"tests.test_conformance_command.{name}", **jarm})


def test_a_parameter_outside_the_jwt(es256_client: Any) -> None:
    with _planner("ParameterOutsidePlanner"):
        results, error = conformance()

    assert error is not None
    failed = rows(results, "RejectNonJarmResponsesInUrlQuery", "FAIL")
    assert {r["mode"] for r in failed} == {"query.jwt", "fragment.jwt"}  # form_post renders a page
    assert {r["reason"] for r in failed} == {
        "Parameters outside the JWT: iss.",
        "Parameters outside the JWT: (query) iss.",
    }
    assert statuses(results, "RejectNonJarmResponsesInUrlQuery", mode="form_post.jwt") == {"PASS"}


def test_unexpected_claims(es256_client: Any) -> None:
    with _planner("ExtraClaimPlanner"):
        results, error = conformance()

    assert error is None  # the suite warns
    assert len(rows(results, "ValidateSuccessfulJARMResponseFromAuthorizationEndpoint", "WARN")) == 3
    warned = rows(results, "CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint", "WARN")
    assert len(warned) == 6
    assert warned[0]["reason"] == "Unexpected claims: tenant."


def test_no_iss_in_the_response(es256_client: Any) -> None:
    with _planner("NoIssPlanner", PROFILE="fapi2-message-signing"):
        results, error = conformance()

    assert error is not None
    assert len(rows(results, "RequireIssInAuthorizationResponse", "FAIL")) == 9
    assert len(rows(results, "ValidateJARMResponse", "FAIL")) == 9


def test_no_iss_without_fapi2_warns(es256_client: Any) -> None:
    with _planner("NoIssPlanner"):
        results, _ = conformance()

    assert len(rows(results, "RequireIssInAuthorizationResponse", "WARN")) == 9


def test_a_success_that_is_an_error(es256_client: Any) -> None:
    with _planner("RefusingPlanner"):
        results, error = conformance()

    assert error is not None
    failed = rows(results, "CheckIfAuthorizationEndpointError", "FAIL")
    assert len(failed) == 3
    assert failed[0]["reason"] == "The success flow answered error='invalid_request' (Closed for maintenance.)."


@pytest.mark.parametrize(
    ("profile", "check"),
    [("fapi1-advanced", "FAPI1ValidateJarmSigningAlg"), ("fapi2-message-signing", "FAPI2ValidateJarmSigningAlg")],
)
def test_a_signing_alg_the_profile_forbids(es256_client: Any, profile: str, check: str) -> None:
    with override_settings(JARM={"PROFILE": profile}):
        results, error = conformance()
    assert error is None
    assert len(rows(results, check, "PASS")) == 9

    with _planner("RS256Planner", PROFILE=profile):
        results, error = conformance()

    assert error is not None
    failed = rows(results, check, "FAIL")
    assert len(failed) == 9
    assert failed[0]["reason"].startswith("RS256 is not one of PS256, ES256")


class AnyScopeValidator(OAuth2Validator):
    """Accepts every scope: unknown scopes are never refused (invalid_scope)."""

    def validate_scopes(self, *args: Any, **kwargs: Any) -> bool:
        return True


class _Described(dict[str, str]):
    def __missing__(self, scope: str) -> str:
        return scope


class AnyScopes(SettingsScopes):
    """Describes every scope (DOT's consent page asks the backend for each requested one)."""

    def get_all_scopes(self) -> dict[str, str]:
        return _Described(super().get_all_scopes())


def test_an_unknown_scope_that_is_accepted(es256_client: Any, settings: Any) -> None:
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OAUTH2_VALIDATOR_CLASS": "tests.test_conformance_command.AnyScopeValidator",
        "SCOPES_BACKEND_CLASS": "tests.test_conformance_command.AnyScopes",
    }

    results, error = conformance()

    assert error is not None
    failed = rows(results, "EnsureErrorFromAuthorizationEndpointResponse", "FAIL")
    assert {r["outcome"] for r in failed} == {"invalid_scope"}
    assert failed[0]["reason"] == "Expected error=invalid_scope, got a success."


# Clients ---------------------------------------------------------------------------------------


def test_a_user_model_that_cannot_be_saved(es256_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError("email is required")

    monkeypatch.setattr(get_user_model(), "save", refuse)

    results, error = conformance()

    assert error is not None
    failed = rows(results, "CheckServerConfiguration", "FAIL")
    assert failed[0]["reason"] == "No throwaway user can be created for the flows (ValueError: email is required)."
    assert not [r for r in results if r["client_id"]]


def test_a_client_without_its_signing_key(make_app: Callable[..., Any]) -> None:
    make_app("code", client_id="ps256-client", jarm={"authorization_signed_response_alg": "PS256"})

    results, error = conformance()

    assert error is not None
    failed = rows(results, "ExtractJARMFromURLQuery", "FAIL")
    assert len(failed) == 9
    assert "No active server key for PS256" in failed[0]["reason"]


def test_a_client_allowed_a_mode_the_server_does_not_advertise(es256_client: Any) -> None:
    ClientSettings.objects.filter(application=es256_client).update(response_modes=["query.jwt", "form_post.jwt"])

    with override_settings(JARM={"RESPONSE_MODES_SUPPORTED": ["query", "query.jwt", "fragment.jwt", "jwt"]}):
        results, error = conformance()

    assert error is not None
    failed = rows(results, "CheckClientResponseModesSupported", "FAIL")
    assert failed[0]["reason"] == (
        "The client may use form_post.jwt, which discovery does not advertise (response_modes_supported)."
    )
    # The modes it may use and the server offers are still run.
    assert {r["mode"] for r in results if r["client_id"] == "es256-client" and r["mode"]} == {"query.jwt"}


def test_a_client_without_jwt_modes_is_not_checked(es256_client: Any) -> None:
    ClientSettings.objects.filter(application=es256_client).update(response_modes=["query", "form_post"])

    results, error = conformance()

    assert error is None
    assert [(r["check"], r["status"]) for r in results if r["client_id"] == "es256-client"] == [
        ("CheckClientResponseModesSupported", "N/A")
    ]


def test_a_client_whose_response_type_the_profile_refuses(make_app: Callable[..., Any]) -> None:
    generate_server_key("ES256")
    make_app("code id_token", jarm={"authorization_signed_response_alg": "ES256"})

    with override_settings(JARM={"PROFILE": "fapi2-message-signing"}):
        results, error = conformance()

    assert error is not None
    assert (
        "refuses response_type=code id_token"
        in rows(results, "CheckClientUsesAuthorizationEndpoint", "FAIL")[0]["reason"]
    )


def _secret_encryption() -> dict[str, str]:
    return {
        "authorization_signed_response_alg": "ES256",
        "authorization_encrypted_response_alg": "dir",
        "authorization_encrypted_response_enc": "A128CBC-HS256",
    }


def test_secret_encrypted_responses_are_decrypted_and_checked(make_app: Callable[..., Any]) -> None:
    generate_server_key("ES256")
    make_app("code id_token", hash_client_secret=False, client_secret=CLIENT_SECRET, jarm=_secret_encryption())

    results, error = conformance()

    assert error is None
    # Hybrid: query.jwt carries tokens only encrypted (JARM 2.3.1), so all three modes run.
    assert len(rows(results, "ValidateJARMEncryptionAlg", "PASS")) == 9
    assert len(rows(results, "ValidateJARMSignatureUsingKid", "PASS")) == 9


def test_a_secret_encrypted_response_that_does_not_decrypt(make_app: Callable[..., Any]) -> None:
    generate_server_key("ES256")
    make_app("code", hash_client_secret=False, client_secret=CLIENT_SECRET, jarm=_secret_encryption())

    with _planner("OtherSecretPlanner"):
        results, error = conformance()

    assert error is not None
    failed = rows(results, "ExtractJARMFromURLQuery", "FAIL")
    assert len(failed) == 9
    assert failed[0]["reason"].startswith(
        "The dir/A128CBC-HS256 JWE does not decrypt with the key derived from the client secret"
    )
    assert rows(results, "ExtractJARMFromURLQuery", "PASS") == []
    assert rows(results, "ValidateJARMSignatureUsingKid", "PASS") == []  # the suite stops there


def _client_rsa_jwks(*kids: str | None) -> tuple[dict[str, Any], list[jwk.JWK]]:
    keys = [jwk.JWK.generate(kty="RSA", size=2048) for _ in kids]
    public = []
    for index, (key, kid) in enumerate(zip(keys, kids, strict=True)):
        member = {**key.export_public(as_dict=True), "use": "enc"}
        member.pop("kid", None)
        if kid is not None:
            member["kid"] = kid
        if index == 0:
            member["alg"] = "RSA-OAEP-256"
        public.append(member)
    return {"keys": public}, keys


def test_responses_encrypted_to_the_client_key(make_app: Callable[..., Any]) -> None:
    generate_server_key("ES256")
    jwks, _ = _client_rsa_jwks("client-enc")
    make_app(
        "code",
        jarm={
            "authorization_signed_response_alg": "ES256",
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "authorization_encrypted_response_enc": "A256GCM",
            "jwks": jwks,
        },
    )

    results, error = conformance()

    assert error is None
    assert len(rows(results, "ValidateJARMFromURLQueryEncryption", "PASS")) == 9
    assert len(rows(results, "ValidateJARMEncryptionEnc", "PASS")) == 9
    # The server holds only the client's public key: the JWT inside is the client's to check.
    skipped = rows(results, "ValidateJARMSignatureUsingKid", "N/A")
    assert len(skipped) == 9
    assert "only the client holds the private key" in skipped[0]["reason"]


def test_a_jwe_kid_that_matches_two_client_keys(make_app: Callable[..., Any]) -> None:
    generate_server_key("ES256")
    jwks, _ = _client_rsa_jwks("client-enc", "client-enc")
    app = make_app(
        "code",
        jarm={
            "authorization_signed_response_alg": "ES256",
            "authorization_encrypted_response_alg": "RSA-OAEP-256",
            "jwks": _client_rsa_jwks("client-enc")[0],
        },
    )
    ClientSettings.objects.filter(application=app).update(jwks=jwks)  # saved without validation

    results, error = conformance()

    assert error is None  # the suite warns
    warned = rows(results, "ValidateJARMFromURLQueryEncryption", "WARN")
    assert len(warned) == 9
    assert warned[0]["reason"] == "kid client-enc matches 2 RSA keys of the client."


# The example project ------------------------------------------------------------------------------


def test_the_demo_passes_every_check(tmp_path: Any) -> None:
    from tests.test_example_project import REPO_ROOT, demo_environment, manage

    if not (REPO_ROOT / "manage.py").exists():
        pytest.skip("the example project is not in this tree")
    env = demo_environment(tmp_path)
    manage(env, "jarm_demo", "--no-runserver")

    document = json.loads(manage(env, "jarm_conformance", "--json").stdout)

    assert document["summary"].get("FAIL", 0) == 0
    assert document["summary"].get("WARN", 0) == 0
    assert {r["client_id"] for r in document["results"]} >= {
        "demo-code-jwt",
        "demo-form-post-jwt",
        "demo-fragment-jwt",
        "demo-hybrid-encrypted",
        "demo-dir-secret",
        "demo-require-jarm",
    }
    not_applicable = {r["client_id"] for r in document["results"] if r["status"] == "N/A"}
    assert not_applicable == {"demo-hybrid-encrypted"}  # encrypted to the relying party's key

    # manage.py exits with status 1 on a failure (here: a client that does not exist).
    failing = subprocess.run(
        [sys.executable, "manage.py", "jarm_conformance", "--client", "nobody"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failing.returncode == 1
    assert "CommandError: 1 check(s) failed." in failing.stderr


# --base-url ---------------------------------------------------------------------------------------


def test_base_url_against_a_live_server(es256_client: Any) -> None:
    with serving() as (host, port):
        results, error = conformance("--base-url", f"http://{host}:{port}")

    assert error is None
    remote = [r for r in results if r["scope"].startswith(f"http://{host}:{port}/")]
    assert {r["scope"] for r in remote} == {
        f"http://{host}:{port}/o/.well-known/openid-configuration",
        f"http://{host}:{port}/o/.well-known/oauth-authorization-server",
        f"http://{host}:{port}/o/.well-known/jwks.json",
    }
    assert statuses(remote, "CheckForKeyIdInServerJWKs") == {"PASS"}


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A deployment gone wrong: each path answers badly in its own way."""

    def do_GET(self) -> None:
        kind = self.server.kind  # type: ignore[attr-defined]
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()
            return
        if kind == "slow-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(100):  # a header line every 0.2 s: each read succeeds, the whole never ends
                try:
                    self.wfile.write(b"X-Slow: 1\r\n")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
            return
        if kind == "slow":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for _ in range(100):  # one byte at a time, never finishing within the deadline
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
            return
        port = self.server.server_port  # type: ignore[attr-defined]
        body = {
            "no-jwks-uri": b'{"issuer": "https://as.example"}',
            "bad-jwks": b'{"keys": "none"}'
            if self.path == "/jwks"
            else json.dumps({"issuer": "x", "jwks_uri": f"http://127.0.0.1:{port}/jwks"}).encode(),
            "huge": b"[" + b"1," * 600_000 + b"1]",
            "html": b"<html>Bad gateway</html>",
            "array": b"[1, 2, 3]",
        }[kind]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[Callable[[str], str]]:
    servers = []

    def start(kind: str) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
        server.daemon_threads = True
        server.kind = kind  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("slow", "did not answer within 1 s"),
        ("slow-headers", "did not answer within 1 s"),
        ("redirect", "redirects (HTTP 302); redirects are not followed"),
        ("huge", "is larger than 1048576 bytes"),
        ("html", "is not JSON"),
        ("array", "is not a JSON object"),
    ],
)
def test_base_url_against_a_hostile_server(
    es256_client: Any, hostile: Callable[[str], str], kind: str, reason: str
) -> None:
    base = hostile(kind)

    results, error = conformance("--base-url", base, "--timeout", "1")

    assert error is not None
    failed = rows(results, "CheckServerConfiguration", "FAIL")
    assert {r["scope"] for r in failed} == {
        f"{base}/o/.well-known/openid-configuration",
        f"{base}/o/.well-known/oauth-authorization-server",
    }
    assert all(reason in r["reason"] for r in failed), failed


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("no-jwks-uri", "names no jwks_uri"), ("bad-jwks", 'The JWK Set has no "keys" array of objects.')],
)
def test_base_url_with_a_bad_jwk_set(es256_client: Any, hostile: Callable[[str], str], kind: str, reason: str) -> None:
    base = hostile(kind)

    results, error = conformance("--base-url", base, "--timeout", "1")

    assert error is not None
    failed = [r for r in rows(results, "FetchServerKeys", "FAIL") if r["scope"].startswith(base)]
    assert failed
    assert all(reason in r["reason"] for r in failed), failed
    # The fetched discovery document is checked as well: it lacks response_modes_supported.
    assert rows(results, "CheckDiscEndpointResponseModesSupportedContainsJwt", "FAIL")


def test_base_url_that_is_not_listening(es256_client: Any) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    results, error = conformance("--base-url", f"http://127.0.0.1:{port}")

    assert error is not None
    assert "cannot be fetched" in rows(results, "CheckServerConfiguration", "FAIL")[0]["reason"]


# Found by review: odd but real configurations ------------------------------------------------------


def test_a_failing_flow_is_explained_on_a_production_host(make_app: Callable[..., Any], admin_user: Any) -> None:
    """The explanation of a failure asks the planner as the flows' host, never as 'testserver'."""
    from django.test import Client
    from django.urls import reverse

    generate_server_key("ES256")
    app = make_app("code", client_id="no-ps256-key", jarm={"authorization_signed_response_alg": "PS256"})
    with override_settings(ALLOWED_HOSTS=["auth.example.com"]):
        results, error = conformance("--client", "no-ps256-key")
        assert error is not None
        reasons = [r["reason"] for r in rows(results, "ExtractJARMFromURLQuery", "FAIL")]
        assert reasons
        assert all("No active server key for PS256" in reason for reason in reasons)
        browser = Client(HTTP_HOST="auth.example.com")
        browser.force_login(admin_user)
        page = browser.post(reverse("admin:oauth2_provider_application_jarm_self_test", args=[app.pk]), secure=True)
        assert page.status_code == 200
        assert b"No active server key for PS256" in page.content


@pytest.mark.parametrize("stored", [[1, None], "jwt", {"jwt": True}])
def test_response_modes_stored_without_clean_never_crash_the_run(make_app: Callable[..., Any], stored: Any) -> None:
    generate_server_key("ES256")
    make_app("code", client_id="odd-modes")
    ClientSettings.objects.filter(application__client_id="odd-modes").update(response_modes=stored)
    results, _ = conformance("--client", "odd-modes")
    assert statuses(results, "CheckClientResponseModesSupported", client_id="odd-modes")


def test_an_x25519_client_key_is_one_key_for_ecdh_es(make_app: Callable[..., Any]) -> None:
    generate_server_key("ES256")
    x25519 = jwk.JWK.generate(kty="OKP", crv="X25519", kid="x1", use="enc")
    signing = jwk.JWK.generate(kty="EC", crv="P-256", kid="sig-1", use="sig")
    make_app(
        "code",
        client_id="x25519-client",
        jarm={
            "authorization_signed_response_alg": "ES256",
            "authorization_encrypted_response_alg": "ECDH-ES",
            "authorization_encrypted_response_enc": "A256GCM",
            "jwks": {"keys": [json.loads(x25519.export_public()), json.loads(signing.export_public())]},
        },
    )
    results, _ = conformance("--client", "x25519-client", "--strict")
    assert statuses(results, "ValidateJARMFromURLQueryEncryption") == {"PASS"}


def test_users_that_start_inactive_still_run_the_flows(es256_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    field = get_user_model()._meta.get_field("is_active")
    monkeypatch.setattr(field, "default", False)
    results, error = conformance("--client", "es256-client")
    assert error is None
    assert len(rows(results, "ExtractJARMFromURLQuery", "PASS")) == 9


def test_deeply_nested_json_is_a_clear_failure_not_a_timeout() -> None:
    from django_jarm.conformance import fetch_json

    body = b"[" * 200_000

    class Nested(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Nested)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        document, problem = fetch_json(f"http://127.0.0.1:{server.server_port}/jwks", timeout=5)
    finally:
        server.shutdown()
    assert document is None
    assert "not JSON" in problem or "cannot be read" in problem
    assert "did not answer" not in problem


@pytest.mark.publication_wait
def test_a_key_stored_just_now_is_waited_for_not_reported_missing(make_app: Callable[..., Any]) -> None:
    # A fresh deployment runs the dry run right after storing its keys: the new key signs
    # within the publication wait, so the flows wait for it rather than fail.
    generate_server_key("ES256")
    make_app("code", client_id="fresh", skip_authorization=False, jarm={"authorization_signed_response_alg": "ES256"})
    with override_settings(JARM={"STATE_REFRESH_SECONDS": 0.5}):
        results, error = conformance("--client", "fresh")
    assert error is None, [r for r in results if r["status"] == "FAIL"]
    assert statuses(results, "ValidateJARMSignatureUsingKid", client_id="fresh") == {"PASS"}
