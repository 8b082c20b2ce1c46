"""The one place django_jarm imports django-oauth-toolkit names whose home differs between releases.

DOT's main branch (after 3.4.1) moved its modules into role packages
(``oauth2_provider.forms`` → ``oauth2_provider.authorization_server.forms``, ``exceptions``,
``http``, ``utils`` and ``compat`` → ``oauth2_provider.core.*``) and left shims at the old
paths that emit a ``DeprecationWarning`` and go away in DOT 4.0. Every name below is taken from
its new home when the installed DOT has it, else from its 3.4 home, so neither release warns::

    from ._compat import AllowForm, FatalClientError

Names are resolved on first use (module ``__getattr__``): importing this module imports no DOT
module, so it is safe before the app registry is ready. The view classes come from DOT's
``oauth2_provider.views`` aggregator, which both layouts keep without a warning.

Whether the installed DOT has RFC 9126 pushed authorization requests is :func:`dot_has_par`.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

_CORE = "oauth2_provider.core"
_AUTHORIZATION_SERVER = "oauth2_provider.authorization_server"

#: name -> the modules that may define it, newest layout first.
MOVED_NAMES: dict[str, tuple[str, ...]] = {
    "AllowForm": (f"{_AUTHORIZATION_SERVER}.forms", "oauth2_provider.forms"),
    "FatalClientError": (f"{_CORE}.exceptions", "oauth2_provider.exceptions"),
    "OAuthToolkitError": (f"{_CORE}.exceptions", "oauth2_provider.exceptions"),
    "OAuth2ResponseRedirect": (f"{_CORE}.http", "oauth2_provider.http"),
    "jwk_from_pem": (f"{_CORE}.utils", "oauth2_provider.utils"),
    # Django 5.1's decorator (DOT re-exports it, with a no-op fallback for older Django).
    "login_not_required": (f"{_CORE}.compat", "oauth2_provider.compat", "django.contrib.auth.decorators"),
    "AuthorizationView": ("oauth2_provider.views",),
    "ConnectDiscoveryInfoView": ("oauth2_provider.views",),
    "OAuthServerMetadataView": ("oauth2_provider.views",),
    "JwksInfoView": ("oauth2_provider.views",),
    "DynamicClientRegistrationView": ("oauth2_provider.views",),
    "DynamicClientRegistrationManagementView": ("oauth2_provider.views",),
    # RFC 9126; only DOTs with pushed authorization requests have it.
    "PushedAuthorizationRequestView": ("oauth2_provider.views",),
}

#: name -> the module itself, newest layout first.
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    # Importing it registers DOT's models in the admin (the old path is a silent shim until 4.0).
    "dot_admin": (f"{_AUTHORIZATION_SERVER}.admin", "oauth2_provider.admin"),
}

__all__ = [*MOVED_NAMES, *MOVED_MODULES, "dot_has_par", "import_first"]


def _import(module_name: str) -> ModuleType | None:
    """``module_name``, or ``None`` when it (or a package above it) does not exist.

    An ImportError raised from inside an existing module is not swallowed.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return None
        raise


def import_first(name: str, candidates: tuple[str, ...]) -> Any:
    """The attribute ``name`` of the first module in ``candidates`` that exists and defines it."""
    for module_name in candidates:
        module = _import(module_name)
        if module is not None and hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"cannot import {name!r} from any of {', '.join(candidates)}")


def __getattr__(name: str) -> Any:
    if name in MOVED_NAMES:
        try:
            value = import_first(name, MOVED_NAMES[name])
        except ImportError:
            if name != "login_not_required":
                raise AttributeError(name) from None
            value = _no_login_exemption
    elif name in MOVED_MODULES:
        found = [module for module in map(_import, MOVED_MODULES[name]) if module is not None]
        if not found:
            raise AttributeError(name)
        value = found[0]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _no_login_exemption(view: Any) -> Any:
    """Django before 5.1 has no LoginRequiredMiddleware, so there is nothing to exempt from."""
    return view


@functools.cache
def dot_has_par() -> bool:
    """Whether the installed DOT implements RFC 9126 pushed authorization requests.

    Feature detection, not a version number: DOT's main branch still calls itself 3.4.1.
    Call it once the app registry is ready (DOT's role package imports its models).
    """
    from oauth2_provider.settings import oauth2_settings

    return _import(f"{_AUTHORIZATION_SERVER}.par") is not None and "PAR_ENABLED" in oauth2_settings.defaults
