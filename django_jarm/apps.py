from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JARMConfig(AppConfig):
    name = "django_jarm"
    verbose_name = _("JARM")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, state  # noqa: F401  (registers the system checks and the state's receivers)
