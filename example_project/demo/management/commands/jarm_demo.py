"""``manage.py jarm_demo``: set up the demo authorization server and run it.

Idempotent: migrates, creates the demo user, the JARM server keys and the demo relying party's
clients when they are missing (and resets the user and the clients to their demo configuration),
then runs the development server unless ``--no-runserver`` is given.
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
from example_project.relying_party import keys as relying_party_keys
from example_project.relying_party.clients import DEMO_CLIENTS, SERVER_KEY_ALGS, DemoClient

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"
DEFAULT_ADDRPORT = "127.0.0.1:8000"


def application_fields(client: DemoClient, owner: Any) -> dict[str, Any]:
    """The DOT application of a demo client."""
    application_model = get_application_model()
    return {
        "name": f"JARM demo: {client.name}",
        "user": owner,
        "client_type": application_model.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": client.grant_type,
        "redirect_uris": " ".join(client.redirect_uris),
        "post_logout_redirect_uris": "",
        # The consent page shows on every request: the point of the demo is to see it.
        "skip_authorization": False,
        # A demo: the relying party shows (shortened) fixed secrets. Secret-derived encryption
        # needs the server to read the secret; the others could keep DOT's hashed default.
        "hash_client_secret": False,
        "client_secret": client.client_secret,
        # ID tokens signed with DOT's OIDC key.
        "algorithm": application_model.RS256_ALGORITHM,
    }


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
        if user is None:
            user = user_model.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
            self.report(f"user {DEMO_USERNAME!r} (password {DEMO_PASSWORD!r}, staff and superuser)", "created")
            return user
        # Whatever happened to it since, the banner's "log in as demo / demo" must hold.
        changed = _sync(user, {"is_active": True, "is_staff": True, "is_superuser": True})
        if not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            changed = True
        if changed:
            user.save()
        self.report(f"user {DEMO_USERNAME!r}", "updated" if changed else "unchanged")
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
        changed = _sync(application, application_fields(client, owner))
        if created or changed:
            application.full_clean()
            application.save()
        settings = ClientSettings.objects.filter(application=application).first()
        if settings is None:
            settings = ClientSettings(application=application)
            changed = True
        registration = client.registration(relying_party_jwks=relying_party_keys.public_jwks())
        if _sync(settings, registration) or settings.pk is None:
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
                    self.style.MIGRATE_HEADING("django_jarm demo: an authorization server and a relying party"),
                    f"  Open        {base}/   (the relying party: one button per flow)",
                    f"  Log in as   {DEMO_USERNAME} / {DEMO_PASSWORD}   (when the server asks; the admin too)",
                    f"  Admin       {base}/admin/   (clients with their JARM settings, server keys)",
                    f"  Discovery   {base}/o/.well-known/openid-configuration",
                    f"  JWK Set     {base}/o/.well-known/jwks.json",
                    "  Demo only: DEBUG is on and the secrets are fixed. Stop it with CONTROL-C.",
                    "",
                ]
            )
        )
