"""``manage.py jarm_demo``: set up the demo authorization server and run it.

Idempotent: migrates, creates the demo user, the JARM server keys and the demo clients when they
are missing (and resets the demo clients to their demo configuration), then runs the
development server unless ``--no-runserver`` is given.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from oauth2_provider.models import get_application_model

from django_jarm.keys import generate_server_key
from django_jarm.models import ClientSettings, ServerKey
from example_project.demo.clients import DEMO_CLIENTS, SERVER_KEY_ALGS, DemoClient

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"
DEFAULT_ADDRPORT = "127.0.0.1:8000"


def _sync(instance: Any, fields: dict[str, Any]) -> bool:
    """Set ``fields`` on ``instance``; whether anything changed."""
    changed = False
    for name, value in fields.items():
        current = getattr(instance, name)
        if current != value:
            setattr(instance, name, value)
            changed = True
    return changed


class Command(BaseCommand):
    help = "Set up the django_jarm demo (database, user, keys, clients) and run the development server."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--no-runserver", action="store_true", help="Set everything up, but do not run the server.")
        parser.add_argument(
            "--addrport",
            default=DEFAULT_ADDRPORT,
            help=f"Address and port of the development server (default {DEFAULT_ADDRPORT}).",
        )
        parser.add_argument(
            "--noreload", action="store_true", help="Run the development server without the auto-reloader."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # runserver's auto-reloader re-runs this command in a child process (and again after
        # every code change): the parent has already set everything up.
        if os.environ.get(DJANGO_AUTORELOAD_ENV) != "true":
            self.set_up(verbosity=options["verbosity"])
            if not options["no_runserver"]:
                self.print_banner(options["addrport"])
        if not options["no_runserver"]:
            call_command("runserver", options["addrport"], use_reloader=not options["noreload"])

    # Set-up ----------------------------------------------------------------------------

    def set_up(self, *, verbosity: int = 1) -> None:
        call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0), stdout=self.stdout)
        self.created = self.updated = 0
        user = self.ensure_user()
        for alg in SERVER_KEY_ALGS:
            self.ensure_server_key(alg)
        for client in DEMO_CLIENTS:
            self.ensure_client(client, owner=user)
        self.stdout.write(self.style.SUCCESS(f"Demo ready: {self.created} object(s) created, {self.updated} updated."))

    def report(self, what: str, outcome: str) -> None:
        if outcome == "created":
            self.created += 1
        elif outcome == "updated":
            self.updated += 1
        self.stdout.write(f"  {what}: {outcome}")

    def ensure_user(self) -> Any:
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: DEMO_USERNAME}).first()
        if user is not None:
            self.report(f"user {DEMO_USERNAME!r}", "exists")
            return user
        user = user_model.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
        self.report(f"user {DEMO_USERNAME!r} (password {DEMO_PASSWORD!r}, superuser)", "created")
        return user

    def ensure_server_key(self, alg: str) -> None:
        active = ServerKey.objects.active().filter(alg=alg).first()
        if active is not None:
            self.report(f"{alg} server key {active.kid}", "active")
            return
        key = generate_server_key(alg)
        self.report(f"{alg} server key {key.kid} ({key.status})", "created")

    @transaction.atomic
    def ensure_client(self, client: DemoClient, *, owner: Any) -> None:
        application_model = get_application_model()
        application = application_model.objects.filter(client_id=client.client_id).first()
        created = application is None
        if created:
            application = application_model(client_id=client.client_id)
        changed = _sync(application, client.application_fields(owner))
        if created or changed:
            application.full_clean()
            application.save()
        settings = ClientSettings.objects.filter(application=application).first()
        if settings is None:
            settings = ClientSettings(application=application)
            changed = True
        if _sync(settings, client.jarm_fields()) or settings.pk is None:
            settings.full_clean()
            settings.save()
            changed = True
        self.report(f"client {client.client_id}", "created" if created else ("updated" if changed else "unchanged"))

    # Output ----------------------------------------------------------------------------

    def print_banner(self, addrport: str) -> None:
        host, _, port = addrport.rpartition(":")
        if not host or host in ("0.0.0.0", "::", "[::]"):
            host = "127.0.0.1"
        base = f"http://{host}:{port or '8000'}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    self.style.MIGRATE_HEADING("django_jarm demo authorization server"),
                    f"  Open           {base}/   (demo clients with ready-made authorization links)",
                    f"  Log in as      {DEMO_USERNAME} / {DEMO_PASSWORD}   (the admin too: {base}/admin/)",
                    f"  Discovery      {base}/o/.well-known/openid-configuration",
                    f"  JWK Set        {base}/o/.well-known/jwks.json",
                    f"  Callback page  {base}/callback/",
                    "  Demo only: DEBUG is on and the secrets are fixed. Stop it with CONTROL-C.",
                    "",
                ]
            )
        )
