"""``manage.py jarm_keys``: list, generate and import, and its error messages."""

from __future__ import annotations

import datetime
import io
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone
from joserfc.jwk import ECKey

from django_jarm.keys import generate_server_key, published_jwks
from django_jarm.management.commands.jarm_keys import Command
from django_jarm.models import ServerKey


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("jarm_keys", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_with_stderr(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("jarm_keys", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def dot_kid() -> str:
    """The RFC 7638 thumbprint of DOT's OIDC key, computed with joserfc."""
    from joserfc.jwk import RSAKey
    from oauth2_provider.settings import oauth2_settings

    return RSAKey.import_key(oauth2_settings.OIDC_RSA_PRIVATE_KEY).thumbprint()


WITHOUT_DOT_KEY = {"OIDC_ENABLED": False, "PKCE_REQUIRED": True}


@pytest.fixture
def pem_file(tmp_path: Any) -> Any:
    """Factory writing a private key PEM to a file; returns (path, PEM bytes)."""

    def write(key: Any = None, name: str = "key.pem") -> tuple[Any, bytes]:
        key = key or ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = tmp_path / name
        path.write_bytes(pem)
        return path, pem

    return write


@pytest.mark.django_db
def test_generate_creates_an_active_key_then_a_next_one():
    first = run("generate", "--alg", "ES256")
    second = run("generate", "--alg", "ES256")

    active, following = ServerKey.objects.order_by("created")
    assert first == f"Generated ES256 key {active.kid} (active).\n"
    ready = (following.created + datetime.timedelta(seconds=3601)).strftime("%Y-%m-%d %H:%M:%S")
    assert second == f"Generated ES256 key {following.kid} (next). It can be activated from {ready} UTC.\n"
    assert (active.alg, active.kty, active.crv, active.status) == ("ES256", "EC", "P-256", "active")
    assert following.status == "next"
    assert active.kid == ECKey.import_key(active.public_jwk).thumbprint()


@pytest.mark.django_db
def test_generate_rsa_with_a_larger_size():
    output = run("generate", "--alg", "PS256", "--rsa-size", "3072")
    server_key = ServerKey.objects.get()
    assert output == f"Generated PS256 key {server_key.kid} (active).\n"
    assert server_key.kty == "RSA"


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["HS256", "none", "es256"])
def test_generate_refuses_an_unknown_alg(alg):
    with pytest.raises(CommandError, match=f"argument --alg: invalid choice: '{alg}'"):
        run("generate", "--alg", alg)
    assert not ServerKey.objects.exists()


def test_an_action_is_required():
    with pytest.raises(CommandError, match="the following arguments are required: action"):
        run()


@pytest.mark.django_db
def test_list_without_keys_says_how_to_create_one():
    with override_settings(OAUTH2_PROVIDER=WITHOUT_DOT_KEY):
        assert run("list") == "No JARM server keys. Create one with: manage.py jarm_keys generate --alg PS256\n"


@pytest.mark.django_db
def test_list_shows_dot_oidc_key_when_there_is_no_server_key():
    assert run("list").splitlines() == [
        "ALG    STATUS   KID                                          AGE",
        f"RS256  active   {dot_kid()}  DOT's OIDC key (OIDC_RSA_PRIVATE_KEY)",
        "No JARM server keys yet. Create one with: manage.py jarm_keys generate --alg PS256",
    ]


@pytest.mark.django_db
def test_list_shows_every_key_of_the_jwk_set():
    es256 = generate_server_key("ES256")
    listed = run("list").splitlines()
    published = {key["kid"] for key in published_jwks()["keys"]}
    assert {line.split()[2] for line in listed[1:]} == published == {es256.kid, dot_kid()}


@pytest.mark.django_db
def test_list_shows_every_key_with_its_status_and_age():
    es256 = generate_server_key("ES256")
    eddsa = generate_server_key("EdDSA")
    es256_next = generate_server_key("ES256")
    now = timezone.now()
    # Age counts from activation, or from creation for a key never activated.
    ServerKey.objects.filter(pk=es256.pk).update(
        created=now - datetime.timedelta(days=40), activated=now - datetime.timedelta(days=10, hours=1)
    )
    ServerKey.objects.filter(pk=es256_next.pk).update(created=now - datetime.timedelta(days=3, hours=1))
    ServerKey.objects.filter(pk=eddsa.pk).update(
        created=now - datetime.timedelta(days=400), activated=None, status="retired"
    )

    with override_settings(OAUTH2_PROVIDER=WITHOUT_DOT_KEY):
        assert run("list").splitlines() == [
            "ALG    STATUS   KID                                          AGE",
            f"ES256  next     {es256_next.kid}  3 days",
            f"ES256  active   {es256.kid}  10 days",
            f"EdDSA  retired  {eddsa.kid}  400 days",
        ]


@pytest.mark.django_db
def test_generate_warns_when_the_default_algorithm_still_has_no_key():
    with override_settings(OAUTH2_PROVIDER=WITHOUT_DOT_KEY):
        out, err = run_with_stderr("generate", "--alg", "PS256")
    key = ServerKey.objects.get()
    assert out == f"Generated PS256 key {key.kid} (active).\n"
    assert "JARM['DEFAULT_SIGNING_ALG'] is 'RS256' and no key signs RS256" in err
    assert 'JARM = {"DEFAULT_SIGNING_ALG": "PS256"}' in err
    assert "manage.py jarm_keys generate --alg RS256" in err


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("jarm", "oauth2_provider"),
    [
        ({"DEFAULT_SIGNING_ALG": "PS256"}, WITHOUT_DOT_KEY),  # the new key signs the default
        ({}, None),  # DOT's OIDC key signs RS256
    ],
)
def test_generate_is_quiet_when_the_default_algorithm_can_sign(jarm, oauth2_provider):
    from django.conf import settings

    with override_settings(JARM=jarm, OAUTH2_PROVIDER=oauth2_provider or settings.OAUTH2_PROVIDER):
        _, err = run_with_stderr("generate", "--alg", "PS256")
        _, err_es256 = run_with_stderr("generate", "--alg", "ES256")
    assert err == err_es256 == ""


@pytest.mark.django_db
def test_generate_is_quiet_when_another_key_signs_the_default():
    with override_settings(OAUTH2_PROVIDER=WITHOUT_DOT_KEY):
        generate_server_key("RS256")
        _, err = run_with_stderr("generate", "--alg", "ES256")
    assert err == ""


@pytest.mark.django_db
def test_import_a_pem_file(pem_file):
    key = ec.generate_private_key(ec.SECP256R1())
    path, _ = pem_file(key)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = ECKey.import_key(public_pem).thumbprint()

    assert run("import", str(path), "--alg", "ES256") == f"Imported ES256 key {kid} (active).\n"
    assert ServerKey.objects.get().kid == kid


@pytest.mark.django_db
def test_import_refuses_a_bad_pem(tmp_path):
    path = tmp_path / "bad.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CommandError) as excinfo:
        run("import", str(path), "--alg", "PS256")
    assert str(excinfo.value) == "The PEM does not hold a readable RSA, EC or Ed25519 private key."
    assert not ServerKey.objects.exists()


@pytest.mark.django_db
def test_import_refuses_a_key_that_does_not_fit_the_alg(pem_file):
    path, pem = pem_file(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(CommandError) as excinfo:
        run("import", str(path), "--alg", "ES256")
    assert str(excinfo.value) == "ES256 needs an EC P-256 key, not an RSA key."
    assert pem.decode() not in str(excinfo.value)


def test_import_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError) as excinfo:
        run("import", str(tmp_path / "missing.pem"), "--alg", "PS256")
    assert str(excinfo.value) == "Cannot read the PEM file: No such file or directory."


def test_import_reports_a_directory(tmp_path):
    with pytest.raises(CommandError) as excinfo:
        run("import", str(tmp_path), "--alg", "PS256")
    assert str(excinfo.value) == "Cannot read the PEM file: Is a directory."


@pytest.mark.django_db
def test_errors_print_one_line_without_traceback_or_key_material(tmp_path, capsys):
    secret_line = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
    path = tmp_path / "bad.pem"
    path.write_text(f"-----BEGIN PRIVATE KEY-----\n{secret_line}\n-----END PRIVATE KEY-----\n")

    with pytest.raises(SystemExit) as excinfo:
        Command().run_from_argv(["manage.py", "jarm_keys", "import", str(path), "--alg", "ES256"])

    captured = capsys.readouterr()
    assert excinfo.value.code == 1
    assert captured.err == "CommandError: The PEM does not hold a readable RSA, EC or Ed25519 private key.\n"
    assert captured.out == ""
    assert secret_line not in captured.err


@pytest.mark.django_db
def test_import_of_a_key_already_stored_is_a_command_error(pem_file):
    path, _ = pem_file()
    run("import", str(path), "--alg", "ES256")
    kid = ServerKey.objects.get().kid

    with pytest.raises(CommandError) as excinfo:
        run("import", str(path), "--alg", "ES256")

    assert str(excinfo.value) == f"Key {kid} is already stored."
    assert ServerKey.objects.count() == 1


@pytest.mark.django_db
def test_invalid_settings_stop_the_command_before_it_touches_a_key():
    with override_settings(JARM={"RESPONSE_LIFETIME": 3600}), pytest.raises(CommandError, match=r"django_jarm\.E004"):
        run("generate", "--alg", "ES256")
    assert not ServerKey.objects.exists()


@pytest.mark.django_db
def test_no_system_check_warning_before_generating_the_missing_key():
    with override_settings(JARM={"DEFAULT_SIGNING_ALG": "PS256"}):
        out, err = run_with_stderr("generate", "--alg", "PS256")
    assert "W007" not in out + err
    assert err == ""
