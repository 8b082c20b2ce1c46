"""The profile descriptions and their three questions, without HTTP (test_conformance.py runs them end to end)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from django_jarm.profiles import (
    FAPI1_ADVANCED,
    FAPI2_MESSAGE_SIGNING,
    NO_PROFILE,
    ProfileRefusal,
    client_settings_problems,
    discovery_overrides,
    get_profile,
    normalise_response_type,
    request_refusal,
)

S256 = ("challenge-0123456789012345678901234567890123", "S256")


def refusal(profile, response_type, mode, pkce=S256):
    return request_refusal(
        profile,
        response_type=response_type,
        response_mode_resolved=mode,
        code_challenge=pkce[0],
        code_challenge_method=pkce[1],
    )


def test_profiles_by_name():
    assert get_profile(None) is NO_PROFILE
    assert get_profile("fapi1-advanced") is FAPI1_ADVANCED
    assert get_profile("fapi2-message-signing") is FAPI2_MESSAGE_SIGNING
    assert get_profile("fapi3") is NO_PROFILE  # check E007 reports it


def test_response_type_words_are_unordered():
    assert normalise_response_type("id_token  code") == "code id_token"
    assert FAPI1_ADVANCED.allows_response_type("id_token code")


@pytest.mark.parametrize(
    ("profile", "response_type", "mode"),
    [
        (FAPI1_ADVANCED, "code", "query.jwt"),
        (FAPI1_ADVANCED, "code", "form_post.jwt"),
        (FAPI1_ADVANCED, "code id_token", "fragment"),
        (FAPI1_ADVANCED, "code id_token", "form_post"),
        (FAPI1_ADVANCED, "code id_token", "fragment.jwt"),
        (FAPI2_MESSAGE_SIGNING, "code", "query.jwt"),
        (FAPI2_MESSAGE_SIGNING, "code", "fragment.jwt"),
        (FAPI2_MESSAGE_SIGNING, "code", "form_post.jwt"),
        (NO_PROFILE, "token", "fragment"),
    ],
)
def test_allowed_requests(profile, response_type, mode):
    assert refusal(profile, response_type, mode) is None


@pytest.mark.parametrize(
    ("profile", "response_type", "mode", "expected"),
    [
        (
            FAPI1_ADVANCED,
            "token",
            "fragment.jwt",
            (
                "unsupported_response_type",
                "FAPI 1.0 Advanced allows only response_type=code or response_type=code id_token.",
            ),
        ),
        (
            FAPI1_ADVANCED,
            "code id_token token",
            "fragment.jwt",
            (
                "unsupported_response_type",
                "FAPI 1.0 Advanced allows only response_type=code or response_type=code id_token.",
            ),
        ),
        (
            FAPI1_ADVANCED,
            "code",
            "query",
            ("invalid_request", "FAPI 1.0 Advanced requires a JWT response mode (response_mode=jwt) here."),
        ),
        (
            FAPI2_MESSAGE_SIGNING,
            "code id_token",
            "fragment",
            ("unsupported_response_type", "FAPI 2.0 Message Signing allows only response_type=code."),
        ),
        (
            FAPI2_MESSAGE_SIGNING,
            "id_token token",
            "fragment.jwt",
            ("unsupported_response_type", "FAPI 2.0 Message Signing allows only response_type=code."),
        ),
        (
            FAPI2_MESSAGE_SIGNING,
            "code",
            "form_post",
            ("invalid_request", "FAPI 2.0 Message Signing requires a JWT response mode (response_mode=jwt) here."),
        ),
    ],
)
def test_refused_response_types_and_modes(profile, response_type, mode, expected):
    assert refusal(profile, response_type, mode) == ProfileRefusal(*expected)


@pytest.mark.parametrize(
    ("profile", "pkce", "expected"),
    [
        (FAPI2_MESSAGE_SIGNING, (None, None), "FAPI 2.0 Message Signing requires PKCE (code_challenge with S256)."),
        (FAPI2_MESSAGE_SIGNING, ("c" * 43, "plain"), "FAPI 2.0 Message Signing requires code_challenge_method=S256."),
        # RFC 7636 4.3: no method means plain.
        (FAPI2_MESSAGE_SIGNING, ("c" * 43, None), "FAPI 2.0 Message Signing requires code_challenge_method=S256."),
        (FAPI1_ADVANCED, ("c" * 43, "plain"), "FAPI 1.0 Advanced requires code_challenge_method=S256."),
        (FAPI1_ADVANCED, (None, None), None),  # FAPI 1 requires PKCE only with PAR
        (NO_PROFILE, ("c" * 43, "plain"), None),
    ],
)
def test_pkce(profile, pkce, expected):
    result = refusal(profile, "code", "query.jwt", pkce)
    assert result == (ProfileRefusal("invalid_request", expected) if expected else None)


def test_pkce_is_not_asked_of_a_response_without_a_code():
    profile = FAPI1_ADVANCED
    assert refusal(profile, "code id_token", "fragment", (None, None)) is None


DOCUMENT = {
    "issuer": "https://as.example",
    "response_types_supported": ["code", "token", "id_token", "id_token token", "code token", "code id_token"],
    "response_modes_supported": ["query", "fragment", "form_post", "query.jwt", "fragment.jwt", "form_post.jwt", "jwt"],
    "code_challenge_methods_supported": ["plain", "S256"],
    "authorization_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA", "Ed25519", "HS256"],
    "authorization_encryption_alg_values_supported": ["RSA-OAEP", "ECDH-ES", "A128KW", "dir"],
    "authorization_encryption_enc_values_supported": ["A128CBC-HS256"],
}


def test_discovery_without_a_profile_is_untouched():
    assert discovery_overrides(NO_PROFILE, DOCUMENT) == DOCUMENT


def test_discovery_under_fapi1():
    assert discovery_overrides(FAPI1_ADVANCED, DOCUMENT) == {
        **DOCUMENT,
        "response_types_supported": ["code", "code id_token"],
        "response_modes_supported": ["fragment", "form_post", "query.jwt", "fragment.jwt", "form_post.jwt", "jwt"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_signing_alg_values_supported": ["PS256", "ES256"],
    }


def test_discovery_under_fapi2():
    assert discovery_overrides(FAPI2_MESSAGE_SIGNING, DOCUMENT) == {
        **DOCUMENT,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query.jwt", "fragment.jwt", "form_post.jwt", "jwt"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_signing_alg_values_supported": ["PS256", "ES256", "EdDSA", "Ed25519"],
        "authorization_encryption_alg_values_supported": ["RSA-OAEP", "ECDH-ES"],
    }


def test_discovery_lists_stay_arrays():
    """CheckDiscEndpointAuth*ValuesIsJsonArray: absent is fine, null never."""
    document = discovery_overrides(FAPI2_MESSAGE_SIGNING, {"issuer": "https://as.example"})
    assert document["authorization_signing_alg_values_supported"] == []
    assert document["authorization_encryption_alg_values_supported"] == []


@pytest.mark.parametrize(
    ("profile", "values", "fields"),
    [
        (NO_PROFILE, {"authorization_signed_response_alg": "RS256", "response_modes": ["query"]}, []),
        (FAPI1_ADVANCED, {"authorization_signed_response_alg": "", "response_modes": []}, []),
        (FAPI1_ADVANCED, {"authorization_signed_response_alg": "ES256", "response_modes": ["jwt", "fragment"]}, []),
        (FAPI1_ADVANCED, {"authorization_signed_response_alg": "PS384"}, ["authorization_signed_response_alg"]),
        (FAPI1_ADVANCED, {"authorization_signed_response_alg": "HS256"}, ["authorization_signed_response_alg"]),
        (FAPI1_ADVANCED, {"response_modes": ["query"]}, ["response_modes"]),
        (FAPI1_ADVANCED, {"authorization_encrypted_response_alg": "A128KW"}, []),
        (FAPI2_MESSAGE_SIGNING, {"authorization_signed_response_alg": "Ed25519"}, []),
        (FAPI2_MESSAGE_SIGNING, {"authorization_signed_response_alg": "RS256"}, ["authorization_signed_response_alg"]),
        (
            FAPI2_MESSAGE_SIGNING,
            {"authorization_encrypted_response_alg": "dir"},
            ["authorization_encrypted_response_alg"],
        ),
        (FAPI2_MESSAGE_SIGNING, {"response_modes": ["fragment"]}, ["response_modes"]),
    ],
)
def test_client_settings_problems(profile, values, fields):
    problems = client_settings_problems(profile, values)
    assert sorted(problems) == sorted(fields)
    for message in problems.values():
        assert "JARM['PROFILE']" in message


def test_the_readme_profile_table_names_tests_that_exist():
    """Each row of the FAPI profiles page's tables names the tests proving it; they must exist."""
    section = (Path(__file__).resolve().parent.parent / "docs" / "fapi.md").read_text()
    named = []
    for row in (line for line in section.splitlines() if line.startswith("| ") and "test_" in line):
        module = None
        for given, test in re.findall(r"`(test_\w+\.py)?::(test_\w+)`", row):
            module = given or module
            named.append((module, test))
    assert len(named) >= 20
    for module, test in named:
        source = (Path(__file__).resolve().parent / module).read_text()
        assert f"def {test}(" in source, f"{module}::{test} is named in docs/fapi.md but does not exist"
