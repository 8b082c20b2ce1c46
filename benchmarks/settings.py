"""Settings of the benchmark project: the test project's, tuned to measure steady-state cost.

- One SQLite database in memory. The benchmark runs in one thread, so Django keeps a single
  connection (an in-memory database is never closed between requests).
- ``ALWAYS_RELOAD_OAUTHLIB_CORE`` off (DOT's default): the tests turn it on for
  ``override_settings``; a server reuses one oauthlib core.
- Logging of ``django_jarm`` kept at WARNING, as in a production configuration.
- ``JARM["RESPONSE_PLANNER"]``: django_jarm's planner, which can also run a benchmark client's
  bare cryptography in its request (``benchmarks.world.BenchmarkPlanner``, figure 2).
"""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import JARM, OAUTH2_PROVIDER

ROOT_URLCONF = "benchmarks.urls"
DEBUG = False

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "benchmarks"}}

OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "ALWAYS_RELOAD_OAUTHLIB_CORE": False}
JARM = {**JARM, "RESPONSE_PLANNER": "benchmarks.world.BenchmarkPlanner"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_jarm": {"level": "WARNING"}},
}
