"""Client metadata rules: the jwks_uri the fetcher would refuse, addresses that are not public,
and the message each refused field gets."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.test import override_settings
from jwcrypto import jwk

from django_jarm.validation import (
    ClientMetadata,
    address_is_public,
    client_metadata_errors,
    is_hashed,
    jwks_uri_problem,
    public_key_problem,
    secret_key_octets,
    secret_problem,
    symmetric_encryption_secret_problem,
)


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("https://rp.example/jwks.json", ""),
        ("https://93.184.216.34/jwks.json", ""),
        ("https://rp.example:8443/jwks.json", ""),
        ("https://127.0.0.1/jwks.json", "not a public address"),
        ("https://10.0.0.7:8443/jwks.json", "not a public address"),
        ("https://169.254.169.254/latest", "not a public address"),
        ("https://[::ffff:192.168.1.1]/jwks.json", "not a public address"),
        ("https://localhost/jwks.json", "loopback name"),
        ("https://keys.localhost./jwks.json", "loopback name"),
        ("https:///jwks.json", "has no host"),
        ("https://[oops/jwks.json", "cannot be parsed"),
        ("https://rp.example:99999/jwks", "cannot be parsed"),
        ("https://rp.example:0/jwks", "invalid port (1-65535)"),
        ("https://user:pw@rp.example/jwks", "user name or password"),
        ("https://rp.example/jwks#keys", "fragment"),
        ("https://rp.example/jw ks", "without spaces or control characters"),
        ("http://rp.example/jwks", "must use https"),
        ("ftp://rp.example/jwks", "must use https"),
        ("https://rp.example/" + "a" * 2000, "longer than 2000"),
    ],
)
def test_jwks_uri_problem_without_dns(uri, problem):
    found = jwks_uri_problem(uri)
    if problem:
        assert problem in found
    else:
        assert found == ""


def test_development_settings_relax_the_scheme_and_the_addresses():
    with override_settings(JARM={"CLIENT_JWKS_ALLOW_HTTP": True, "CLIENT_JWKS_ALLOW_PRIVATE_ADDRESSES": True}):
        assert jwks_uri_problem("http://127.0.0.1:8000/jwks") == ""
        assert jwks_uri_problem("http://localhost:8000/jwks") == ""


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:0:10.0.0.1", False),  # IPv4-translated
        ("::10.0.0.1", False),  # IPv4-compatible (deprecated)
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::", False),  # 6to4 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo (client 127.0.0.1)
        ("2001:0:5db8:d822:0:f227:a247:cbdd", False),  # Teredo with public server and client: a relay
        ("224.0.0.1", False),
        ("ff0e::1", False),  # global-scope multicast
        ("::ffff:93.184.216.34", True),  # IPv4-mapped: the public IPv4 host itself
        ("::ffff:224.0.0.1", False),  # IPv4-mapped multicast
        ("::93.184.216.34", False),  # IPv4-compatible (deprecated), even of a public address
        ("::ffff:0:93.184.216.34", False),  # IPv4-translated, even of a public address
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34
        ("64:ff9b:1::5db8:d822", False),  # local-use NAT64 (RFC 8215), whatever it embeds
        ("2002:5db8:d822::1", True),  # 6to4 of 93.184.216.34
        ("2002:e000:1::", False),  # 6to4 of 224.0.0.1 (multicast)
        ("2606:2800:220:1:248:1893:25c8:1946%eth0", True),  # a zone does not hide the address
        ("fec0::1", False),  # deprecated site-local
        ("5f00::1", False),  # SRv6 SID
        ("3fff::1", False),  # documentation
        ("not an address", False),
    ],
)
def test_address_is_public_looks_inside_ipv6_forms_that_embed_ipv4(address, public):
    assert address_is_public(address) is public


# Client metadata: each refusal names its field and says why ---------------------------------


def _rsa_jwks(bits: int) -> dict[str, Any]:
    key = jwk.JWK.generate(kty="RSA", size=bits, kid=f"rsa-{bits}", use="enc")
    return {"keys": [json.loads(key.export_public())]}


@pytest.mark.parametrize("alg", ["none", "None", "NONE", 5, ["ES256"], None, "ES256K"])
def test_a_signing_algorithm_outside_the_list_is_unsupported(alg):
    errors = client_metadata_errors(ClientMetadata(authorization_signed_response_alg=alg), None)
    assert errors == {"authorization_signed_response_alg": ["Unsupported signing algorithm."]}


@pytest.mark.parametrize("alg", ["RSA1_5", "rsa-oaep", 5, ["RSA-OAEP"], None])
def test_an_encryption_algorithm_outside_the_list_is_unsupported(alg):
    errors = client_metadata_errors(ClientMetadata(authorization_encrypted_response_alg=alg), None)
    assert errors == {"authorization_encrypted_response_alg": ["Unsupported encryption algorithm (never RSA1_5)."]}


@pytest.mark.parametrize("enc", ["A128CBC", "a128gcm", 5, None])
def test_a_content_encryption_outside_the_list_is_unsupported(enc):
    metadata = ClientMetadata(authorization_encrypted_response_alg="dir", authorization_encrypted_response_enc=enc)
    errors = client_metadata_errors(metadata, None)
    assert errors["authorization_encrypted_response_enc"] == ["Unsupported content encryption."]


def test_algorithms_known_but_not_enabled_say_which_setting_enables_them():
    jarm = {"SIGNING_ALGS_SUPPORTED": ["ES256"], "ENCRYPTION_ALGS_SUPPORTED": ["RSA-OAEP-256"]}
    with override_settings(JARM=jarm):
        signing = client_metadata_errors(ClientMetadata(authorization_signed_response_alg="PS256"), None)
        encryption = client_metadata_errors(ClientMetadata(authorization_encrypted_response_alg="A128KW"), None)
    assert signing == {
        "authorization_signed_response_alg": [
            "PS256 is not enabled on this server (JARM['SIGNING_ALGS_SUPPORTED'] or the profile)."
        ]
    }
    assert encryption == {
        "authorization_encrypted_response_alg": [
            "A128KW is not enabled on this server (JARM['ENCRYPTION_ALGS_SUPPORTED'] or the profile)."
        ]
    }


def test_a_weak_inline_encryption_key_is_refused_with_its_own_reason():
    jwks = _rsa_jwks(1024)
    errors = client_metadata_errors(
        ClientMetadata(authorization_encrypted_response_alg="RSA-OAEP-256", jwks=jwks), None
    )
    assert errors == {"jwks": [public_key_problem(jwks["keys"][0])]}
    assert "2048" in errors["jwks"][0]


def test_secret_derived_key_sizes():
    assert secret_key_octets("A128KW", "A256GCM") == 16
    assert secret_key_octets("dir", "A256CBC-HS512") == 64
    assert secret_key_octets("dir", "A999GCM") == 0
    assert secret_key_octets("RSA-OAEP-256", "A128GCM") == 0


@pytest.mark.django_db
def test_secret_problems_name_the_fix(make_app):
    plain = make_app(hash_client_secret=False, client_secret="s" * 40)
    assert symmetric_encryption_secret_problem(plain, "A128KW", "A128GCM") == ""
    assert (
        symmetric_encryption_secret_problem(plain, "dir", "A999GCM") == "No secret-derived key exists for dir/A999GCM."
    )
    assert symmetric_encryption_secret_problem(plain, "dir", "A256CBC-HS512") == (
        "dir needs a client secret of at least 64 octets (OpenID Connect Core 16.19)."
    )
    empty = make_app(hash_client_secret=False)
    empty.client_secret = ""
    # An empty secret is too short, not "hashed".
    assert (
        secret_problem(empty, "HS256", 32)
        == "HS256 needs a client secret of at least 32 octets (OpenID Connect Core 16.19)."
    )
    hashed = make_app(hash_client_secret=True)
    assert "stores it hashed" in secret_problem(hashed, "HS256", 32)
    public = make_app(client_type="public", hash_client_secret=False)
    assert secret_problem(public, "HS256", 32) == "HS256 needs a confidential client; public clients have no secret."


def test_a_client_model_without_hash_client_secret_is_taken_as_hashing():
    # A custom application model (or an older DOT) without the field: assume the secret is hashed.
    legacy = SimpleNamespace(client_type="confidential", client_secret="s" * 40)
    assert "stores it hashed" in secret_problem(legacy, "HS256", 32)


def test_is_hashed():
    assert not is_hashed("")
    assert not is_hashed("s" * 40)
    assert is_hashed(make_password("s" * 40))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"jwks_uri": 5}, {"jwks_uri": ["The JWK Set URL must be a string."]}),
        ({"jwks_uri": None}, {"jwks_uri": ["The JWK Set URL must be a string."]}),
        ({"require_jarm": "yes"}, {"require_jarm": ["require_jarm is true or false."]}),
        ({"require_jarm": 1}, {"require_jarm": ["require_jarm is true or false."]}),
        ({"jwks": ""}, {}),  # an empty value is no JWK Set, not a malformed one
        ({"jwks": {}}, {}),
        ({"jwks": None}, {}),
        ({"jwks": []}, {"jwks": ['A JWK Set is a JSON object with a "keys" list.']}),
    ],
)
def test_each_refused_field_gets_its_message(fields, expected):
    assert client_metadata_errors(ClientMetadata(**fields), None) == expected


def test_a_mode_the_server_does_not_offer_names_what_it_offers():
    with override_settings(JARM={"RESPONSE_MODES_SUPPORTED": ["query", "jwt", "query.jwt"]}):
        errors = client_metadata_errors(ClientMetadata(response_modes=["query.jwt", "form_post.jwt"]), None)
    assert errors == {"response_modes": ["This server does not offer form_post.jwt; it offers query, jwt, query.jwt."]}


def test_a_content_encryption_known_but_not_enabled_says_which_setting_enables_it():
    metadata = ClientMetadata(
        authorization_encrypted_response_alg="dir", authorization_encrypted_response_enc="A256GCM"
    )
    with override_settings(JARM={"ENCRYPTION_ENCS_SUPPORTED": ["A128CBC-HS256"]}):
        errors = client_metadata_errors(metadata, None)
    assert errors == {
        "authorization_encrypted_response_enc": [
            "A256GCM is not enabled on this server (JARM['ENCRYPTION_ENCS_SUPPORTED'])."
        ]
    }


def test_a_jwk_set_holding_one_weak_key_is_refused_even_with_a_strong_one():
    weak, strong = _rsa_jwks(1024)["keys"][0], _rsa_jwks(2048)["keys"][0]
    metadata = ClientMetadata(authorization_encrypted_response_alg="RSA-OAEP-256", jwks={"keys": [strong, weak]})
    assert client_metadata_errors(metadata, None) == {"jwks": [public_key_problem(weak)]}
