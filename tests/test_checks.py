"""One test per system check id, and the documentation lists every id and every setting."""

from __future__ import annotations

import ast
import re
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings

from django_jarm import checks
from django_jarm._compat import dot_has_par
from django_jarm.conf import DEFAULTS
from django_jarm.keys import generate_server_key

DOCS = Path(__file__).resolve().parent.parent / "docs"


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def settings_check(**jarm) -> list:
    with override_settings(JARM=jarm):
        return checks.check_settings()


def test_defaults_are_clean():
    assert settings_check() == []


def test_e001_not_a_dict():
    with override_settings(JARM=["RESPONSE_LIFETIME"]):
        messages = checks.check_settings()
    assert ids(messages) == ["django_jarm.E001"]


def test_w001_unknown_key():
    messages = settings_check(RESPONSE_LIFETIM=60)
    assert ids(messages) == ["django_jarm.W001"]
    assert "JARM['RESPONSE_LIFETIM']" in messages[0].hint


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("RESPONSE_LIFETIME", "120"),
        ("ENCRYPTION_ALGS_SUPPORTED", ["RSA1_5"]),
        ("RESPONSE_MODES_SUPPORTED", ["web_message.jwt"]),
        ("REQUIRE_JARM", "yes"),
        ("CLIENT_JWKS_TIMEOUT", 0),
        ("KEY_ENCRYPTION_SECRET", "short"),
        ("ISSUER", "login.example.com"),
        ("SIGNING_ALGS_SUPPORTED", ["RS256", "XS999"]),
    ],
)
def test_e002_invalid_value(key, value):
    messages = settings_check(**{key: value})
    assert ids(messages) == ["django_jarm.E002"]
    assert f"JARM['{key}']" in messages[0].hint


@pytest.mark.parametrize(
    ("jarm", "key"),
    [
        ({"SIGNING_ALGS_SUPPORTED": ["none", "RS256"]}, "SIGNING_ALGS_SUPPORTED"),
        ({"DEFAULT_SIGNING_ALG": "none"}, "DEFAULT_SIGNING_ALG"),
    ],
)
def test_e003_none(jarm, key):
    messages = settings_check(**jarm)
    assert "django_jarm.E003" in ids(messages)
    assert f"JARM['{key}']" in next(m for m in messages if m.id == "django_jarm.E003").hint


@pytest.mark.parametrize("lifetime", [9, 601])
def test_e004_lifetime(lifetime):
    messages = settings_check(RESPONSE_LIFETIME=lifetime)
    assert ids(messages) == ["django_jarm.E004"]
    assert "JARM['RESPONSE_LIFETIME']" in messages[0].hint


def test_e005_default_alg_not_enabled():
    messages = settings_check(DEFAULT_SIGNING_ALG="PS256", SIGNING_ALGS_SUPPORTED=["ES256"])
    assert ids(messages) == ["django_jarm.E005"]
    assert "JARM['DEFAULT_SIGNING_ALG']" in messages[0].hint


def test_e006_redirect_status():
    messages = settings_check(REDIRECT_STATUS=301)
    assert ids(messages) == ["django_jarm.E006"]


def test_e007_unknown_profile():
    messages = settings_check(PROFILE="fapi3")
    assert ids(messages) == ["django_jarm.E007"]
    assert "JARM['PROFILE']" in messages[0].hint


@pytest.mark.parametrize(
    ("jarm", "named"),
    [
        ({"PROFILE": "fapi1-advanced", "DEFAULT_SIGNING_ALG": "RS256"}, "RS256"),
        ({"PROFILE": "fapi1-advanced", "SIGNING_ALGS_SUPPORTED": ["PS256", "EdDSA"]}, "EdDSA"),
        (
            {
                "PROFILE": "fapi2-message-signing",
                "DEFAULT_SIGNING_ALG": "PS256",
                "SIGNING_ALGS_SUPPORTED": ["PS256", "HS256"],
            },
            "HS256",
        ),
        ({"PROFILE": "fapi2-message-signing", "ENCRYPTION_ALGS_SUPPORTED": ["RSA-OAEP-256", "A128KW"]}, "A128KW"),
    ],
    ids=["explicit-rs256-default", "explicit-eddsa-fapi1", "hmac", "symmetric-encryption"],
)
def test_e008_profile_conflicts(jarm, named):
    messages = settings_check(**jarm)
    assert ids(messages) == ["django_jarm.E008"]
    assert f"but {named} is configured." in messages[0].msg
    assert "JARM[" in messages[0].hint


@pytest.mark.parametrize(
    "jarm",
    [
        {"PROFILE": "fapi1-advanced"},
        {"PROFILE": "fapi2-message-signing"},
        {"PROFILE": "fapi1-advanced", "SIGNING_ALGS_SUPPORTED": ["ES256"]},
        {
            "PROFILE": "fapi2-message-signing",
            "DEFAULT_SIGNING_ALG": "PS256",
            "SIGNING_ALGS_SUPPORTED": ["PS256", "ES256", "EdDSA", "Ed25519"],
            "ENCRYPTION_ALGS_SUPPORTED": ["RSA-OAEP-256", "ECDH-ES"],
        },
    ],
    ids=["fapi1-defaults", "fapi2-defaults", "fapi1-es256-only", "fapi2-explicit"],
)
def test_profile_without_conflict(jarm):
    """The profile narrows the default lists (and picks the default algorithm) instead of refusing them."""
    assert settings_check(**jarm) == []


FAPI2_CLEAN = {
    "PROFILE": "fapi2-message-signing",
    "DEFAULT_SIGNING_ALG": "PS256",
    "SIGNING_ALGS_SUPPORTED": ["PS256"],
    "ENCRYPTION_ALGS_SUPPORTED": ["RSA-OAEP-256"],
}


@pytest.mark.skipif(not dot_has_par(), reason="the installed django-oauth-toolkit has no pushed authorization requests")
def test_e012_fapi2_with_dots_par_turned_off():
    with override_settings(OAUTH2_PROVIDER={**django_settings.OAUTH2_PROVIDER, "PAR_ENABLED": False}):
        messages = settings_check(**FAPI2_CLEAN)
    assert ids(messages) == ["django_jarm.E012"]
    assert "OAUTH2_PROVIDER['PAR_ENABLED']" in messages[0].hint
    assert settings_check(**FAPI2_CLEAN) == []


@pytest.mark.skipif(dot_has_par(), reason="the installed django-oauth-toolkit has pushed authorization requests")
def test_e012_is_not_raised_where_dot_has_no_par():
    # There is nothing to turn on: the profile cannot require what DOT does not serve.
    assert settings_check(**FAPI2_CLEAN) == []


def readme_fapi_examples() -> list[dict]:
    """Every ``JARM = {...}`` of the FAPI profiles page (docs/fapi.md)."""
    section = (Path(__file__).resolve().parent.parent / "docs" / "fapi.md").read_text()
    found = [ast.literal_eval(match) for match in re.findall(r"^JARM = (\{.*?\})$", section, flags=re.M | re.S)]
    assert found, "docs/fapi.md has no JARM example"
    return found


def test_readme_fapi_examples_pass_manage_py_check():
    for example in readme_fapi_examples():
        with override_settings(JARM=example):
            out = StringIO()
            call_command("check", stdout=out, stderr=out)  # raises SystemCheckError on any error
            assert "no issues" in out.getvalue(), (example, out.getvalue())


@pytest.mark.django_db
def test_readme_fapi_examples_pass_the_database_checks_with_their_keys(make_app):
    for alg in ("PS256", "ES256", "EdDSA"):
        generate_server_key(alg)
    make_app(jarm={"authorization_signed_response_alg": "ES256", "response_modes": ["jwt"]})
    for example in readme_fapi_examples():
        with override_settings(JARM=example):
            messages = [*checks.check_keys(databases=["default"]), *checks.check_client_profiles(databases=["default"])]
        assert [m for m in messages if m.is_serious()] == [], example


@pytest.mark.django_db
def test_e011_client_settings_conflict_with_the_profile(make_app):
    rs256 = make_app(jarm={"authorization_signed_response_alg": "RS256"})
    symmetric = make_app(
        hash_client_secret=False, client_secret="s" * 64, jarm={"authorization_encrypted_response_alg": "A256KW"}
    )
    make_app(jarm={"authorization_signed_response_alg": "PS256"})
    make_app()  # no settings row: the server defaults, which the profile narrows
    with override_settings(JARM={"PROFILE": "fapi1-advanced"}):
        messages = checks.check_client_profiles(databases=["default"])
    assert ids(messages) == ["django_jarm.E011"]
    assert messages[0].msg == (
        f"Client {rs256.client_id}: FAPI 1.0 Advanced (JARM['PROFILE']) allows only PS256, ES256 for signing "
        "responses, not RS256: choose one of them."
    )
    assert "authorization_signed_response_alg" in messages[0].hint
    with override_settings(JARM={"PROFILE": "fapi2-message-signing"}):
        messages = checks.check_client_profiles(databases=["default"])
    assert ids(messages) == ["django_jarm.E011", "django_jarm.E011"]
    assert [m.msg.split(":")[0] for m in messages] == [f"Client {rs256.client_id}", f"Client {symmetric.client_id}"]
    with override_settings(JARM={}):
        assert checks.check_client_profiles(databases=["default"]) == []


@pytest.mark.django_db
def test_e011_runs_through_manage_py_check_with_the_database(make_app):
    make_app(jarm={"authorization_signed_response_alg": "RS256"})
    generate_server_key("PS256")
    with override_settings(JARM={"PROFILE": "fapi1-advanced"}), pytest.raises(SystemCheckError, match="E011"):
        call_command("check", databases=["default"])


@pytest.mark.django_db
def test_e009_and_w002_keys_missing():
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256", "SIGNING_ALGS_SUPPORTED": ["PS256", "ES256"]}):
        messages = checks.check_keys(databases=["default"])
    assert ids(messages) == ["django_jarm.E009", "django_jarm.W002"]
    assert "without an active key: ES256." in messages[1].msg
    assert "jarm_keys generate --alg PS256" in messages[0].hint
    generate_server_key("PS256")
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256", "SIGNING_ALGS_SUPPORTED": ["RS256", "PS256"]}):
        assert checks.check_keys(databases=["default"]) == []


@pytest.mark.django_db
def test_w002_quiet_on_the_default_algorithm_list():
    # Every algorithm is enabled by default; discovery lists those with a key, nothing to warn about.
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}):
        assert ids(checks.check_keys(databases=["default"])) == ["django_jarm.E009"]


@pytest.mark.django_db
def test_database_checks_need_a_database():
    assert checks.check_keys(databases=None) == []
    assert checks.check_clients(databases=None) == []
    assert checks.check_client_profiles(databases=None) == []


@pytest.mark.django_db
def test_w007_on_a_plain_check_once_the_database_is_migrated(capsys):
    # `manage.py check` and `runserver` pass no database: the missing default key shows there too,
    # as a warning (it must not block `jarm_keys generate`), and as E009 with --database.
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}):
        call_command("check")
    output = capsys.readouterr().err
    assert "django_jarm.W007" in output
    assert "No active server key for JARM['DEFAULT_SIGNING_ALG'] 'PS256'" in output
    assert "active keys exist for RS256" in output  # DOT's OIDC key
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}), pytest.raises(SystemCheckError) as raised:
        call_command("check", "--database", "default")
    assert "(django_jarm.E009) No active server key" in str(raised.value)
    generate_server_key("PS256")
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}):
        assert checks.check_default_key_without_database_option(databases=None) == []


@pytest.mark.django_db
@pytest.mark.parametrize("databases", [None, ["default"]])
def test_w007_whatever_databases_django_passes(databases):
    # Django < 6 passes None to untagged checks, Django 6 every alias: the check reads the default.
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}):
        assert ids(checks.check_default_key_without_database_option(databases=databases)) == ["django_jarm.W007"]


@pytest.mark.django_db
def test_w007_silenced_reads_nothing(django_assert_num_queries):
    silenced = override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}, SILENCED_SYSTEM_CHECKS=["django_jarm.W007"])
    with silenced, django_assert_num_queries(0):
        assert checks.check_default_key_without_database_option(databases=None) == []


def test_w007_silent_without_database_access():
    # No django_db mark: the test database is blocked, as an unreachable one would fail.
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}):
        assert checks.check_default_key_without_database_option(databases=None) == []


@pytest.mark.django_db
def test_w007_silent_before_migrate():
    with (
        override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}),
        mock.patch.object(connection.introspection, "table_names", return_value=["django_migrations"]),
    ):
        assert checks.check_default_key_without_database_option(databases=None) == []


def test_plain_check_never_creates_a_sqlite_file(tmp_path):
    missing = tmp_path / "db.sqlite3"
    assert checks._sqlite_database_exists(str(missing)) is False
    assert not missing.exists()
    missing.write_bytes(b"")
    assert checks._sqlite_database_exists(str(missing)) is True
    assert checks._sqlite_database_exists(":memory:") is True


@pytest.mark.django_db
def test_w003_client_secret_unusable(make_app):
    make_app("code", jarm={"authorization_signed_response_alg": "HS256"})  # hashed secret
    make_app(
        "code", hash_client_secret=False, client_secret="x" * 20, jarm={"authorization_encrypted_response_alg": "dir"}
    )
    make_app(
        "code", hash_client_secret=False, client_secret="x" * 64, jarm={"authorization_signed_response_alg": "HS512"}
    )
    messages = checks.check_clients(databases=["default"])
    assert ids(messages) == ["django_jarm.W003", "django_jarm.W003"]
    assert "hashed" in messages[0].msg
    assert "32 octets" in messages[1].msg


@pytest.mark.django_db
def test_e010_undecryptable_key():
    generate_server_key("ES256")
    with override_settings(JARM={"KEY_ENCRYPTION_SECRET": "another secret, at least thirty-two characters"}):
        messages = checks.check_keys(databases=["default"])
    assert "django_jarm.E010" in ids(messages)
    assert "KEY_ENCRYPTION_SECRET_FALLBACKS" in next(m for m in messages if m.id == "django_jarm.E010").hint


@pytest.mark.parametrize(
    ("jarm", "expected"),
    [
        ({"ISSUER": "https://as.example", "CLIENT_JWKS_ALLOW_HTTP": True}, ["django_jarm.W004"]),
        ({"ISSUER": "https://as.example", "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": True}, ["django_jarm.W005"]),
        ({}, ["django_jarm.W006"]),
        ({"ISSUER": "https://as.example"}, []),
    ],
)
def test_deployment_checks(jarm, expected):
    with override_settings(JARM=jarm, DEBUG=False):
        assert ids(checks.check_deployment()) == expected
    with override_settings(JARM=jarm, DEBUG=True):
        assert checks.check_deployment() == []


def test_w006_quiet_when_dot_pins_the_issuer():
    dot = dict(django_settings.OAUTH2_PROVIDER, OIDC_ISS_ENDPOINT="https://as.example/o")
    with override_settings(OAUTH2_PROVIDER=dot, JARM={}, DEBUG=False):
        assert checks.check_deployment() == []


def test_checks_run_through_manage_py():
    with override_settings(JARM={"RESPONSE_LIFETIME": 3600}), pytest.raises(SystemCheckError, match="E004"):
        call_command("check")


def test_ids_are_unique_and_all_documented():
    source = Path(checks.__file__).read_text()
    used = set(re.findall(r'id="(django_jarm\.[EW]\d{3})"', source))
    assert used == set(checks.CHECK_IDS)
    documented = (DOCS / "checks.md").read_text()
    assert set(re.findall(r"^\| `(django_jarm\.[EW]\d{3})` \|", documented, flags=re.M)) == set(checks.CHECK_IDS)


def test_every_setting_is_documented():
    documented = (DOCS / "settings.md").read_text()
    assert set(re.findall(r"^\| `([A-Z_]+)` \|", documented, flags=re.M)) == set(DEFAULTS)


def test_e013_a_pinned_issuer_that_dot_does_not_use():
    dot = {**django_settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": ""}
    with override_settings(OAUTH2_PROVIDER=dot):
        messages = settings_check(ISSUER="https://login.example.com/o")
    assert ids(messages) == ["django_jarm.E013"]
    assert "'https://login.example.com/o'" in messages[0].msg
    assert "derived from each request's scheme and host" in messages[0].msg
    assert "OAUTH2_PROVIDER['OIDC_ISS_ENDPOINT']" in messages[0].hint
    with override_settings(OAUTH2_PROVIDER={**dot, "OIDC_ISS_ENDPOINT": "https://other.example.com/o"}):
        assert "'https://other.example.com/o'" in settings_check(ISSUER="https://login.example.com/o")[0].msg
    with override_settings(OAUTH2_PROVIDER={**dot, "OIDC_ISS_ENDPOINT": "https://login.example.com/o"}):
        assert settings_check(ISSUER="https://login.example.com/o") == []


def test_w008_a_removed_setting():
    messages = settings_check(KEY_CACHE_SECONDS=60)
    assert ids(messages) == ["django_jarm.W008"]
    assert "STATE_REFRESH_SECONDS" in messages[0].hint
