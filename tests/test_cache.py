"""The cache is an optimisation: with the backend failing, responses stay correct."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings

from django_jarm import cache as shared_cache
from django_jarm.keys import clear_caches, generate_server_key, retire_server_key

BROKEN = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}


def test_failures_become_misses(caplog, monkeypatch):
    monkeypatch.setattr(shared_cache, "_last_warning", float("-inf"))  # not rate-limited by earlier tests
    with override_settings(CACHES=BROKEN), caplog.at_level(logging.WARNING, logger="django_jarm.cache"):
        assert shared_cache.get("k", "default") == "default"
        shared_cache.set("k", 1, 10)
        shared_cache.incr("k")
        shared_cache.delete("k")
        assert shared_cache.add("k", 1, 10) is True
    assert "Cache unavailable" in caplog.text


@pytest.mark.django_db
def test_signing_and_jwks_without_a_cache(browser, make_app, authorize, verify, jwks):
    with override_settings(CACHES=BROKEN):
        key = generate_server_key("ES256")
        app = make_app("code", jarm={"authorization_signed_response_alg": "ES256"})
        response, _, _ = authorize(browser, app, "code", "jwt")
        assert verify(response, app)[1].header["kid"] == key.kid
        assert key.kid in {k["kid"] for k in jwks()["keys"]}


@pytest.mark.django_db
def test_key_changes_reach_a_process_without_a_cache_after_key_cache_seconds():
    with override_settings(CACHES=BROKEN, JARM={"KEY_CACHE_SECONDS": 0}):
        key = generate_server_key("ES256")
        from django_jarm.keys import published_jwks

        assert key.kid in {k["kid"] for k in published_jwks()["keys"]}
        upcoming = generate_server_key("ES256")
        retire_server_key(upcoming.kid)
        assert upcoming.kid not in {k["kid"] for k in published_jwks()["keys"]}
    clear_caches()
