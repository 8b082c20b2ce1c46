"""Admin: JARM settings as an inline on DOT's Application page, and the server keys.

The inline is added by re-registering the Application admin that is installed (DOT's, or the
project's ``APPLICATION_ADMIN_CLASS``) with one more inline, whatever the order of apps in
``INSTALLED_APPS``. Projects with their own admin site add
:class:`ClientSettingsInline` to their Application admin's ``inlines``.
"""

from __future__ import annotations

from typing import Any

import oauth2_provider.admin  # noqa: F401  (DOT registers its Application admin first)
from django.contrib import admin
from django.http import HttpRequest
from oauth2_provider.models import get_application_model

from .models import ClientSettings, ServerKey


class ClientSettingsInline(admin.StackedInline):
    model = ClientSettings
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name = "JARM settings"
    fields = (
        "authorization_signed_response_alg",
        "authorization_encrypted_response_alg",
        "authorization_encrypted_response_enc",
        "jwks",
        "jwks_uri",
        "response_modes",
        "require_jarm",
    )


def add_inline_to_application_admin(site: admin.AdminSite = admin.site) -> None:
    """Re-register the Application admin on ``site`` with :class:`ClientSettingsInline` added."""
    application_model = get_application_model()
    current = site._registry.get(application_model)
    if current is None or ClientSettingsInline in current.inlines:
        return
    current_class = type(current)
    site.unregister(application_model)
    site.register(
        application_model,
        type(
            f"JARM{current_class.__name__}",
            (current_class,),
            {"inlines": [*current_class.inlines, ClientSettingsInline], "__module__": __name__},
        ),
    )


add_inline_to_application_admin()


@admin.register(ServerKey)
class ServerKeyAdmin(admin.ModelAdmin):
    list_display = ("kid", "alg", "status", "created", "activated")
    list_filter = ("alg", "status")
    search_fields = ("kid",)
    fields = (
        "kid",
        "alg",
        "kty",
        "crv",
        "status",
        "public_jwk",
        "created",
        "activated",
        "retiring_since",
        "retired",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
