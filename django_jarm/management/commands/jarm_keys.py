"""``manage.py jarm_keys``: list, generate and import the server's JARM signing keys."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_jarm.exceptions import ConfigurationError
from django_jarm.keys import KEY_PARAMS, generate_server_key, import_server_key
from django_jarm.models import ServerKey


class Command(BaseCommand):
    help = "Manage the JARM signing keys of this authorization server."

    def add_arguments(self, parser: ArgumentParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        commands.add_parser("list", help="List the keys with their status.")
        generate = commands.add_parser(
            "generate", help="Create a key: active when none is active for the algorithm, else next."
        )
        generate.add_argument("--alg", required=True, choices=list(KEY_PARAMS))
        generate.add_argument("--rsa-size", type=int, default=2048, help="RSA modulus size (>= 2048).")
        imported = commands.add_parser("import", help="Import a private key from a PEM file.")
        imported.add_argument("pem", type=Path)
        imported.add_argument("--alg", required=True, choices=list(KEY_PARAMS))

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "list":
                self._list()
            elif action == "generate":
                key = generate_server_key(options["alg"], rsa_size=options["rsa_size"])
                self.stdout.write(f"Generated {key.alg} key {key.kid} ({key.status}).")
            elif action == "import":
                key = import_server_key(options["pem"].read_bytes(), options["alg"])
                self.stdout.write(f"Imported {key.alg} key {key.kid} ({key.status}).")
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"Cannot read the PEM file: {exc.strerror}.") from exc

    def _list(self) -> None:
        keys = ServerKey.objects.all()
        if not keys:
            self.stdout.write(
                "No JARM server keys. Create one with: manage.py jarm_keys generate --alg PS256"
            )
            return
        for key in keys:
            self.stdout.write(f"{key.alg:6} {key.status:8} {key.kid}  created {key.created:%Y-%m-%d %H:%M}")
