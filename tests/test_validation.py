"""Client metadata rules: the jwks_uri the fetcher would refuse, addresses that are not public."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_jarm.validation import address_is_public, jwks_uri_problem


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
        ("224.0.0.1", False),
    ],
)
def test_address_is_public_looks_inside_ipv6_forms_that_embed_ipv4(address, public):
    assert address_is_public(address) is public
