"""The wheel holds the package and its data, nothing else; the version is written in one place.

``JARM_TEST_WHEEL`` names a wheel already built (CI builds one with ``python -m build``);
without it the wheel is built here with ``pip wheel`` (hatchling in an isolated environment).
"""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import django_jarm

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    if os.environ.get("JARM_TEST_WHEEL"):
        path = Path(os.environ["JARM_TEST_WHEEL"])
    else:
        if not (REPO_ROOT / "pyproject.toml").exists():
            pytest.skip("no pyproject.toml: not a checkout")
        directory = tmp_path_factory.mktemp("wheel")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(directory), REPO_ROOT],
            check=True,
            timeout=300,
        )
        (path,) = directory.glob("django_jarm-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_holds_the_package_data(wheel):
    names = set(wheel.namelist())
    source = REPO_ROOT / "django_jarm"
    expected = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected <= names
    assert "django_jarm/py.typed" in names
    assert "django_jarm/templates/django_jarm/form_post.html" in names
    assert any(re.fullmatch(r"django_jarm/migrations/0001_\w+\.py", name) for name in names)


def test_wheel_holds_nothing_else(wheel):
    top_level = {name.split("/", 1)[0] for name in wheel.namelist()}
    (dist_info,) = top_level - {"django_jarm"}
    assert re.fullmatch(r"django_jarm-[^/]+\.dist-info", dist_info)
    assert not [name for name in wheel.namelist() if re.search(r"(^|/)(tests|example_project|benchmarks)/", name)]


def test_version_comes_from_the_package(wheel):
    (metadata,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    headers = email.parser.Parser().parsestr(wheel.read(metadata).decode())
    assert headers["Version"] == django_jarm.__version__
    assert headers["License-Expression"] == "BSD-3-Clause"
    assert "Framework :: Django :: 6.1" in headers.get_all("Classifier")
    assert not re.search(r"^version = ", (REPO_ROOT / "pyproject.toml").read_text(), re.M)  # only in __init__.py
