"""Sphinx configuration: ``sphinx-build -W docs docs/_build`` (or ``tox -e docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the modules: a minimal project with DOT and django_jarm installed.
settings.configure(
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "oauth2_provider",
        "django_jarm",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    SECRET_KEY="only-for-building-the-documentation",
    USE_TZ=True,
)
django.setup()

import django_jarm  # noqa: E402

project = "django_jarm"
author = "django_jarm contributors"
copyright = "2026, django_jarm contributors"
release = django_jarm.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "screenshots"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

intersphinx_mapping: dict[str, tuple[str, None]] = {}

html_theme = "alabaster"
html_title = f"django_jarm {release}"
