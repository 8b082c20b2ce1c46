"""The DOT compatibility module: new homes first, old homes as a fallback, nothing else imports DOT's moved paths."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from django_jarm import _compat

PACKAGE = Path(_compat.__file__).parent

#: Modules DOT's main branch turned into deprecation shims (old path -> new home).
MOVED_MODULES = {
    "oauth2_provider.admin",
    "oauth2_provider.backends",
    "oauth2_provider.bcp",
    "oauth2_provider.checks",
    "oauth2_provider.cimd",
    "oauth2_provider.compat",
    "oauth2_provider.dcr",
    "oauth2_provider.decorators",
    "oauth2_provider.exceptions",
    "oauth2_provider.forms",
    "oauth2_provider.http",
    "oauth2_provider.middleware",
    "oauth2_provider.oauth2_backends",
    "oauth2_provider.scopes",
    "oauth2_provider.signals",
    "oauth2_provider.utils",
    "oauth2_provider.www_authenticate",
}


def _dot_modules(path: Path) -> set[str]:
    """The oauth2_provider modules ``path`` imports (``from oauth2_provider import x`` counts as x)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            if node.module == "oauth2_provider":
                modules.update(f"oauth2_provider.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return {module for module in modules if module.split(".")[0] == "oauth2_provider"}


def test_only_the_compat_module_imports_dot_paths_that_moved():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            module
            for module in _dot_modules(path)
            # Views come from DOT's aggregator, which both layouts keep; never from its per-module shims.
            if module in MOVED_MODULES or module.startswith("oauth2_provider.views.")
        )
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_compat.py"
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_the_package_imports_without_a_deprecation_warning_of_its_own():
    # A fresh interpreter: Django setup imports the admin, the URLconf imports the views.
    code = (
        "import warnings; warnings.filterwarnings('error', category=DeprecationWarning, module='django_jarm');"
        "import django; django.setup();"
        "import django_jarm.urls, django_jarm.checks, django_jarm.management.commands.jarm_keys;"
        "from django.urls import reverse; reverse('oauth2_provider:authorize')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(_compat.MOVED_NAMES))
def test_each_name_comes_from_its_newest_home(name):
    if name == "PushedAuthorizationRequestView" and not _compat.dot_has_par():
        with pytest.raises(ImportError):
            _compat.import_first(name, _compat.MOVED_NAMES[name])
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        value = getattr(_compat, name)
    for module_name in _compat.MOVED_NAMES[name]:
        module = _compat._import(module_name)
        if module is not None and hasattr(module, name):
            assert value is getattr(module, name)
            break
    else:
        pytest.fail(f"{name} found nowhere")


def test_dot_admin_is_dots_admin_module():
    new_home = _compat._import("oauth2_provider.authorization_server.admin")
    assert _compat.dot_admin is (new_home or importlib.import_module("oauth2_provider.admin"))


def test_import_first_takes_the_first_module_that_has_the_name():
    assert _compat.import_first("join", ("no_such_package.sub", "os.path", "posixpath")) is sys.modules["os.path"].join


def test_import_first_skips_a_module_without_the_name():
    assert _compat.import_first("sep", ("json", "os")) == sys.modules["os"].sep


def test_import_first_raises_when_no_module_has_it():
    with pytest.raises(ImportError, match="cannot import 'nothing'"):
        _compat.import_first("nothing", ("json", "no_such_package"))


def test_an_import_error_inside_an_existing_module_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "broken_home.py").write_text("import no_such_dependency_of_broken_home\nvalue = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_of_broken_home"):
        _compat.import_first("value", ("broken_home", "json"))


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError):
        _compat.NoSuchName  # noqa: B018


def test_dot_has_par_matches_the_installed_dot():
    from oauth2_provider.settings import oauth2_settings

    has_module = _compat._import("oauth2_provider.authorization_server.par") is not None
    assert _compat.dot_has_par() is (has_module and "PAR_ENABLED" in oauth2_settings.defaults)
