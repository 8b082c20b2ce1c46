"""Admin: JARM settings inline on DOT's Application page (with a preview), and the server keys.

The inline is added by re-registering the installed Application admin (DOT's, or the class in
``OAUTH2_PROVIDER["APPLICATION_ADMIN_CLASS"]``) with one more inline, whatever the order of apps
in ``INSTALLED_APPS``. A project with its own admin site or its own registration adds
:class:`ClientSettingsInline` to its Application admin's ``inlines`` (and, for the preview,
mixes in :class:`JARMApplicationAdminMixin`).
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any, cast

import django
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import get_application_model

from . import conformance, tokens
from ._compat import dot_admin  # noqa: F401  (DOT registers its Application admin first)
from .authorization import AuthorizationRequest, get_planner
from .conf import jarm_settings
from .exceptions import ConfigurationError
from .keys import (
    KEY_PARAMS,
    activate_server_key,
    describe_rotation,
    generate_server_key,
    retire_server_key,
    rotate_server_keys,
)
from .models import ClientSettings, ServerKey

#: Django 5.0+ asks URL form fields which scheme to assume; ours are https.
_ASSUME_HTTPS: dict[str, Any] = {"assume_scheme": "https"} if django.VERSION >= (5, 0) else {}


class JWKSetField(forms.JSONField):
    """A JSON field whose empty value is an empty box, not the JSON literal ``null``."""

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        return super().prepare_value(value)


class ClientSettingsForm(forms.ModelForm):
    """Choices come from what the server supports right now, not from every name we know."""

    jwks = JWKSetField(
        label=_("JWK Set"),
        required=False,
        help_text=ClientSettings._meta.get_field("jwks").help_text,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
    )

    jwks_uri = forms.URLField(
        label=_("JWK Set URL"),
        required=False,
        max_length=2000,
        help_text=ClientSettings._meta.get_field("jwks_uri").help_text,
        **_ASSUME_HTTPS,
    )

    response_modes = forms.MultipleChoiceField(
        label=_("allowed response modes"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every mode the server supports. 'jwt' admits what it resolves to."),
    )

    class Meta:
        model = ClientSettings
        fields = (
            "authorization_signed_response_alg",
            "authorization_encrypted_response_alg",
            "authorization_encrypted_response_enc",
            "jwks",
            "jwks_uri",
            "response_modes",
            "require_jarm",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        default = jarm_settings.default_signing_alg
        cast(forms.ChoiceField, self.fields["authorization_signed_response_alg"]).choices = [
            ("", _("server default (%(alg)s)") % {"alg": default}),
            *[(alg, alg) for alg in jarm_settings.signing_algs],
        ]
        cast(forms.ChoiceField, self.fields["authorization_encrypted_response_alg"]).choices = [
            ("", _("no encryption")),
            *[(alg, alg) for alg in jarm_settings.encryption_algs],
        ]
        cast(forms.ChoiceField, self.fields["authorization_encrypted_response_enc"]).choices = [
            ("", _("default (A128CBC-HS256)")),
            *[(enc, enc) for enc in jarm_settings.encryption_encs],
        ]
        cast(forms.ChoiceField, self.fields["response_modes"]).choices = [
            (mode, mode) for mode in jarm_settings.response_modes
        ]


class ClientSettingsInline(admin.StackedInline):
    model = ClientSettings
    form = ClientSettingsForm
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name = _("JARM settings")
    verbose_name_plural = _("JARM settings")

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        """The empty form right away for a client without settings (saved only when filled in)."""
        if obj is None or ClientSettings.objects.filter(application=obj).exists():
            return 0
        return 1


# Preview --------------------------------------------------------------------------------

SAMPLE_PARAMS = [("code", "<authorization code>"), ("state", "<state from the request>")]


def _header_of(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS or JWE (no verification: it is ours, just built)."""
    segment = token.split(".", 1)[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def build_preview(request: HttpRequest, application: Any) -> dict[str, Any]:
    """A successful code response to ``application`` right now, built by the endpoint's own path.

    The core plans it as for a ``response_mode=jwt`` request and signs (and encrypts) it with the
    planned keys, so a planner subclass's hooks show here exactly as they act on the endpoint.
    """
    planner = get_planner()
    redirect_uris = application.redirect_uris.split()
    plan = planner.plan(
        request,
        application,
        AuthorizationRequest(
            client_id=application.client_id,
            redirect_uri=redirect_uris[0] if redirect_uris else "",
            response_type="code",
            state=SAMPLE_PARAMS[1][1],
            response_modes=("jwt",),
        ),
    )
    preview: dict[str, Any] = {
        "alg": planner.get_signing_alg(application, plan.settings),
        "mode": plan.mode.name,
        "encryption": None,
        "problems": [],
    }
    if plan.signing_key is None:
        preview["problems"].append(plan.problem or (plan.refusal.description if plan.refusal else ""))
        return preview
    preview["kid"] = plan.signing_key.kid
    try:
        signed = planner.sign(plan, SAMPLE_PARAMS)
        if plan.encryption_key is not None:
            preview["encryption"] = json.dumps(_header_of(tokens.encrypt(signed, plan.encryption_key)), indent=2)
    except ConfigurationError as exc:
        preview["problems"].append(str(exc))
        return preview
    preview["header"] = json.dumps(_header_of(signed), indent=2)
    preview["claims"] = json.dumps(planner.get_response_claims(plan, SAMPLE_PARAMS), indent=2)
    return preview


class JARMApplicationAdminMixin:
    """Adds the JARM preview below the inlines of the Application change page."""

    change_form_template = "admin/django_jarm/application_change_form.html"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        application = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if application is not None:
            extra_context["jarm_preview"] = build_preview(request, application)
            opts = self.model._meta  # type: ignore[attr-defined]
            extra_context["jarm_self_test_url"] = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_jarm_self_test", args=[application.pk]
            )
        response: HttpResponse = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        return response

    def get_urls(self) -> list[Any]:
        opts = self.model._meta  # type: ignore[attr-defined]
        view = self.admin_site.admin_view(self.jarm_self_test_view)  # type: ignore[attr-defined]
        name = f"{opts.app_label}_{opts.model_name}_jarm_self_test"
        urls: list[Any] = super().get_urls()  # type: ignore[misc]
        return [path("<path:object_id>/jarm-self-test/", view, name=name), *urls]

    def jarm_self_test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The conformance checks of this client's responses (POST runs them: the flows write, then roll back)."""
        application = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if application is None or not self.has_change_permission(request, application):  # type: ignore[attr-defined]
            return HttpResponse(status=403 if application is not None else 404)
        report = None
        if request.method == "POST":
            report = conformance.client_results([application], host=request.get_host(), secure=request.is_secure())
        return self_test_response(
            self.admin_site,  # type: ignore[attr-defined]
            request,
            report,
            title=_("JARM self-test: %(client_id)s") % {"client_id": application.client_id},
            opts=self.model._meta,  # type: ignore[attr-defined]
            back=reverse(
                f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_change",  # type: ignore[attr-defined]
                args=[application.pk],
            ),
        )


def self_test_response(
    site: admin.AdminSite, request: HttpRequest, report: conformance.Report | None, **context: Any
) -> TemplateResponse:
    """The results page of a self-test (the form that runs it when ``report`` is None)."""
    results = report.results if report is not None else []
    counts = {status: sum(r.status == status for r in results) for status in conformance.STATUSES}
    return TemplateResponse(
        request,
        "admin/django_jarm/self_test.html",
        {**site.each_context(request), **context, "report": report, "results": results, "counts": counts},
    )


def add_inline_to_application_admin(site: admin.AdminSite = admin.site) -> None:
    """Re-register the Application admin on ``site`` with the JARM inline and preview."""
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
            (JARMApplicationAdminMixin, current_class),
            {
                "inlines": [*current_class.inlines, ClientSettingsInline],
                "list_display": _with_client_id(current_class.list_display),
                "__module__": __name__,
            },
        ),
    )


def _with_client_id(list_display: Any) -> Any:
    """DOT's columns with ``client_id`` after the name: the id clients, logs and checks use."""
    columns = list(list_display)
    if "client_id" in columns or columns == ["__str__"]:
        return list_display
    at = columns.index("name") + 1 if "name" in columns else len(columns)
    return (*columns[:at], "client_id", *columns[at:])


add_inline_to_application_admin()


# Server keys ----------------------------------------------------------------------------


def _short_time(moment: datetime.datetime | None) -> str:
    """``2026-12-01`` in the current time zone: the key list fits a laptop screen (times on the key page)."""
    if moment is None:
        return "-"
    return timezone.localtime(moment).strftime("%Y-%m-%d")


class GenerateKeyForm(forms.Form):
    alg = forms.ChoiceField(
        label=_("algorithm"),
        choices=[(alg, alg) for alg in KEY_PARAMS],
        help_text=_("The new key is active if no key of this algorithm is active; otherwise it is 'next'."),
    )


@admin.register(ServerKey)
class ServerKeyAdmin(admin.ModelAdmin):
    # Age counts from activation (or creation); the exact times are on each key's page.
    list_display = ("key_id", "alg", "status", "age", "created_on")
    list_filter = ("alg", "status")
    search_fields = ("kid",)
    fields = ("kid", "alg", "kty", "crv", "status", "public_key", "created", "activated", "retiring_since", "retired")
    readonly_fields = fields
    actions = ("activate_keys", "retire_keys", "rotate_algorithms")
    change_list_template = "admin/django_jarm/serverkey_change_list.html"

    @admin.display(description=_("age"))
    def age(self, obj: ServerKey) -> str:
        days = (timezone.now() - (obj.activated or obj.created)) // datetime.timedelta(days=1)
        return _("%(days)d days") % {"days": days}

    @admin.display(description=_("kid"), ordering="kid")
    def key_id(self, obj: ServerKey) -> str:
        """The kid's first characters (the whole kid on hover, on the key page and in search)."""
        return format_html('<span title="{}">{}…</span>', obj.kid, obj.kid[:8])

    @admin.display(description=_("created"), ordering="created")
    def created_on(self, obj: ServerKey) -> str:
        return _short_time(obj.created)

    @admin.display(description=_("public key"))
    def public_key(self, obj: ServerKey) -> str:
        """The public JWK as published, whole: long RSA moduli wrap instead of being cut off."""
        return format_html(
            '<pre style="white-space: pre-wrap; overflow-wrap: anywhere; margin: 0">{}</pre>',
            json.dumps(obj.public_jwk, indent=2),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are generated or imported, never typed in

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Key pages are read-only; the permission still governs the key actions.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # retire instead: a deleted key cannot verify what it signed

    # Short labels: the action menu sits beside its "Go" button. What each does is in the docs.
    @admin.action(description=_("Activate the selected key"), permissions=["change"])
    def activate_keys(self, request: HttpRequest, queryset: QuerySet[ServerKey]) -> None:
        keys = list(queryset)
        if len(keys) != 1:
            self.message_user(request, _("Select exactly one key to activate."), messages.ERROR)
            return
        self._run(request, activate_server_key, keys[0].kid, _("Key %(kid)s is active."))

    @admin.action(description=_("Retire the selected keys"), permissions=["change"])
    def retire_keys(self, request: HttpRequest, queryset: QuerySet[ServerKey]) -> None:
        for key in queryset:
            self._run(request, retire_server_key, key.kid, _("Key %(kid)s is retired."))

    @admin.action(description=_("Rotate the selected keys' algorithms"), permissions=["change"])
    def rotate_algorithms(self, request: HttpRequest, queryset: QuerySet[ServerKey]) -> None:
        for alg in sorted(set(queryset.values_list("alg", flat=True))):
            try:
                rotation = rotate_server_keys(alg)
            except ConfigurationError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                level = messages.SUCCESS if rotation.activated else messages.WARNING
                self.message_user(request, describe_rotation(rotation), level)

    def _run(self, request: HttpRequest, operation: Any, kid: str, success: Any) -> None:
        try:
            operation(kid)
        except ConfigurationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, success % {"kid": kid}, messages.SUCCESS)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {"can_generate": self.has_change_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[Any]:
        generate = self.admin_site.admin_view(self.generate_view)
        self_test = self.admin_site.admin_view(self.self_test_view)
        return [
            path("generate/", generate, name="django_jarm_serverkey_generate"),
            path("self-test/", self_test, name="django_jarm_serverkey_self_test"),
            *super().get_urls(),
        ]

    def self_test_view(self, request: HttpRequest) -> HttpResponse:
        """The server conditions (read only, on GET); POST also runs every client's flows (rolled back)."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        report = conformance.server_results(request.get_host(), secure=request.is_secure())
        application_model = get_application_model()
        can_run_clients = request.user.has_perm(
            f"{application_model._meta.app_label}.change_{application_model._meta.model_name}"
        )
        if request.method == "POST":
            if not can_run_clients:
                return HttpResponse(status=403)
            report.results += conformance.client_results(host=request.get_host(), secure=request.is_secure()).results
        return self_test_response(
            self.admin_site,
            request,
            report,
            title=_("JARM self-test: server"),
            opts=self.model._meta,
            back=reverse("admin:django_jarm_serverkey_changelist"),
            server=True,
            can_run_clients=can_run_clients,
            clients_run=request.method == "POST",
        )

    def generate_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            return HttpResponse(status=403)
        form = GenerateKeyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                key = generate_server_key(form.cleaned_data["alg"])
            except ConfigurationError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request,
                    _("Generated %(alg)s key %(kid)s (%(status)s).")
                    % {"alg": key.alg, "kid": key.kid, "status": key.status},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:django_jarm_serverkey_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": _("Generate a JARM server key"),
        }
        return TemplateResponse(request, "admin/django_jarm/serverkey_generate.html", context)
