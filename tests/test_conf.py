"""The ``JARM`` settings object: defaults, reload on ``override_settings``, derived values."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_jarm.conf import DEFAULTS, JARMSettings, jarm_settings


def test_every_setting_defaults_when_jarm_is_absent():
    assert {name: jarm_settings.get(name) for name in DEFAULTS} == {
        "ISSUER": None,
        "RESPONSE_LIFETIME": 120,
        "DEFAULT_SIGNING_ALG": "RS256",
        "SIGNING_ALGS_SUPPORTED": [
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
            "Ed25519",
        ],
        "ENCRYPTION_ALGS_SUPPORTED": [
            "RSA-OAEP",
            "RSA-OAEP-256",
            "ECDH-ES",
            "ECDH-ES+A128KW",
            "ECDH-ES+A192KW",
            "ECDH-ES+A256KW",
            "A128KW",
            "A192KW",
            "A256KW",
            "A128GCMKW",
            "A192GCMKW",
            "A256GCMKW",
            "dir",
        ],
        "ENCRYPTION_ENCS_SUPPORTED": [
            "A128CBC-HS256",
            "A192CBC-HS384",
            "A256CBC-HS512",
            "A128GCM",
            "A192GCM",
            "A256GCM",
        ],
        "RESPONSE_MODES_SUPPORTED": [
            "query",
            "fragment",
            "form_post",
            "query.jwt",
            "fragment.jwt",
            "form_post.jwt",
            "jwt",
        ],
        "REQUIRE_JARM": False,
        "PROFILE": None,
        "INCLUDE_IAT": True,
        "REDIRECT_STATUS": 302,
        "RESPONSE_PLANNER": "django_jarm.authorization.ResponsePlanner",
        "STATE_REFRESH_SECONDS": 1.0,
        "JWKS_MAX_AGE": None,
        "CLIENT_JWKS_CACHE_SECONDS": 300,
        "CLIENT_JWKS_TIMEOUT": 3.0,
        "CLIENT_JWKS_MAX_BYTES": 65536,
        "CLIENT_JWKS_ALLOW_HTTP": False,
        "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": False,
        "KEY_ENCRYPTION_SECRET": None,
        "KEY_ENCRYPTION_SECRET_FALLBACKS": [],
    }


def test_defaults_hold_no_unsafe_algorithm():
    assert "none" not in jarm_settings.signing_algs
    assert not any(alg.startswith("HS") for alg in jarm_settings.signing_algs)
    assert "RSA1_5" not in jarm_settings.ENCRYPTION_ALGS_SUPPORTED


def test_override_settings_reloads_a_value_already_read():
    assert jarm_settings.RESPONSE_LIFETIME == 120  # read and cached first

    with override_settings(JARM={"RESPONSE_LIFETIME": 60}):
        assert jarm_settings.RESPONSE_LIFETIME == 60
        assert jarm_settings.INCLUDE_IAT is True  # keys not given keep their default

    assert jarm_settings.RESPONSE_LIFETIME == 120


def test_reload_forgets_cached_values():
    settings_object = JARMSettings(defaults={"RESPONSE_LIFETIME": 120})
    assert settings_object.RESPONSE_LIFETIME == 120
    with override_settings(JARM={"RESPONSE_LIFETIME": 30}):
        settings_object.reload()

        assert settings_object.RESPONSE_LIFETIME == 30


@override_settings(JARM=["not", "a", "dict"])
def test_a_jarm_setting_that_is_not_a_dict_is_ignored():
    assert jarm_settings.RESPONSE_LIFETIME == 120


@pytest.mark.parametrize("name", ["NO_SUCH_SETTING", "response_lifetime", "_cached_values"])
def test_unknown_setting_raises_attribute_error(name):
    with pytest.raises(AttributeError, match=f"^Invalid JARM setting: '{name}'$"):
        jarm_settings.get(name)


@override_settings(JARM={"NO_SUCH_SETTING": 1})
def test_unknown_key_in_the_setting_is_not_exposed():
    assert not hasattr(jarm_settings, "NO_SUCH_SETTING")


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (None, ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]),
        ("fapi1-advanced", ["PS256", "ES256"]),
        ("fapi2-message-signing", ["PS256", "ES256", "EdDSA", "Ed25519"]),
    ],
)
def test_profile_restricts_signing_algs(profile, expected):
    with override_settings(JARM={"PROFILE": profile}):
        assert jarm_settings.signing_algs == expected


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (None, ["HS256", "ES256", "RS256", "EdDSA"]),
        ("fapi1-advanced", ["ES256"]),
        ("fapi2-message-signing", ["ES256", "EdDSA"]),
    ],
)
def test_profile_filters_the_configured_list(profile, expected):
    configured = ["HS256", "none", "ES256", "RS256", "EdDSA", "RSA1_5", "es256"]
    with override_settings(JARM={"SIGNING_ALGS_SUPPORTED": configured, "PROFILE": profile}):
        assert jarm_settings.signing_algs == expected


@override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["HS512", "HS256"]})
def test_symmetric_algs_are_enabled_only_when_listed():
    assert jarm_settings.signing_algs == ["HS512", "HS256"]


@override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"})
def test_default_signing_alg_reads_the_setting():
    assert jarm_settings.default_signing_alg == "PS256"


def test_default_signing_alg_is_rs256_by_default():
    assert jarm_settings.default_signing_alg == "RS256"


@override_settings(
    JARM={"RESPONSE_MODES_SUPPORTED": ["jwt", "web_message", "query", "JWT", "form_post.jwt", "query.JWT"]}
)
def test_response_modes_drops_unknown_names():
    assert jarm_settings.response_modes == ["jwt", "query", "form_post.jwt"]


@override_settings(
    JARM={
        "ENCRYPTION_ALGS_SUPPORTED": ["RSA1_5", "ECDH-ES", "dir", "rsa-oaep", "RSA-OAEP-256"],
        "ENCRYPTION_ENCS_SUPPORTED": ["A128CBC-HS256", "A512GCM", "A256GCM"],
    }
)
def test_encryption_lists_drop_unknown_and_unsafe_names():
    assert jarm_settings.encryption_algs == ["ECDH-ES", "dir", "RSA-OAEP-256"]
    assert jarm_settings.encryption_encs == ["A128CBC-HS256", "A256GCM"]


def test_response_modes_default_to_all():
    assert jarm_settings.response_modes == [
        "query",
        "fragment",
        "form_post",
        "query.jwt",
        "fragment.jwt",
        "form_post.jwt",
        "jwt",
    ]


@pytest.mark.parametrize(
    ("jarm", "default_alg", "status", "lifetime"),
    [
        ({}, "RS256", 302, 120),
        ({"RESPONSE_LIFETIME": 900}, "RS256", 302, 900),  # check E004 reports it; no profile clamps it
        ({"PROFILE": "fapi1-advanced"}, "PS256", 302, 120),
        ({"PROFILE": "fapi1-advanced", "SIGNING_ALGS_SUPPORTED": ["ES256"]}, "ES256", 302, 120),
        ({"PROFILE": "fapi2-message-signing", "RESPONSE_LIFETIME": 900}, "PS256", 303, 600),
        (
            {"PROFILE": "fapi2-message-signing", "REDIRECT_STATUS": 302, "DEFAULT_SIGNING_ALG": "ES256"},
            "ES256",
            302,
            120,
        ),
    ],
    ids=["defaults", "long-lifetime", "fapi1", "fapi1-es256-only", "fapi2", "fapi2-explicit"],
)
def test_profile_derived_values(jarm, default_alg, status, lifetime):
    with override_settings(JARM=jarm):
        assert jarm_settings.default_signing_alg == default_alg
        assert jarm_settings.redirect_status == status
        assert jarm_settings.response_lifetime == lifetime


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (None, 13),
        ("fapi1-advanced", 13),
        ("fapi2-message-signing", 6),
    ],
)
def test_profile_restricts_encryption_algs(profile, expected):
    with override_settings(JARM={"PROFILE": profile}):
        algs = jarm_settings.encryption_algs
    assert len(algs) == expected
    assert "RSA1_5" not in algs
    if profile == "fapi2-message-signing":
        assert algs == ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"]


def test_derived_values_follow_a_new_jarm_dict_and_reload():
    with override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["ES256", "PS256"]}):
        assert jarm_settings.signing_algs == ["ES256", "PS256"]
        assert jarm_settings.response_lifetime == 120
        with override_settings(JARM={"SIGNING_ALGS_SUPPORTED": ["PS256"], "PROFILE": "fapi1-advanced"}):
            assert jarm_settings.signing_algs == ["PS256"]
            assert jarm_settings.profile.name == "fapi1-advanced"
            assert jarm_settings.response_lifetime == 120
        assert jarm_settings.signing_algs == ["ES256", "PS256"]
        assert jarm_settings.profile.name is None


def test_a_derived_list_is_a_copy_and_a_change_in_place_is_seen_after_reload(settings):
    settings.JARM = {"SIGNING_ALGS_SUPPORTED": ["ES256"]}
    algs = jarm_settings.signing_algs
    algs.append("HS256")
    assert jarm_settings.signing_algs == ["ES256"]  # the caller's list is its own
    settings.JARM["SIGNING_ALGS_SUPPORTED"].append("PS256")
    assert jarm_settings.signing_algs == ["ES256"]  # derived once per dict
    jarm_settings.reload()
    assert jarm_settings.signing_algs == ["ES256", "PS256"]
