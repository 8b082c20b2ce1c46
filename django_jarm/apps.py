from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JARMConfig(AppConfig):
    name = "django_jarm"
    verbose_name = _("JARM")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from . import checks  # noqa: F401  (registers the system checks)
        from .clients import forget
        from .models import ClientSettings

        post_save.connect(forget, sender=ClientSettings, dispatch_uid="django_jarm.clients.saved")
        post_delete.connect(forget, sender=ClientSettings, dispatch_uid="django_jarm.clients.deleted")
