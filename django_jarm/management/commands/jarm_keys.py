"""``manage.py jarm_keys``: the life of the server's JARM signing keys.

list                              the keys and their status
generate --alg A                  a new key: active when none is active for A, else next
import FILE.pem --alg A           a private key kept elsewhere
activate KID [--force]            KID signs from now on; the active key becomes retiring
retire KID [--force]              KID leaves the JWKS (not the active key)
rotate --alg A [--alg B]          one rotation step, as far as the waits allow (keys.rotate_server_keys)
rotate --if-older-than 90d        rotate every algorithm whose active key is older: cron-safe

activate, retire and rotate refuse (activate, retire) or leave for later (rotate) what would make
clients fail to verify a response, and say how long to wait; --force does it anyway.
reencrypt                         store every key under the current KEY_ENCRYPTION_SECRET
"""

from __future__ import annotations

import datetime
import re
from argparse import ArgumentParser, ArgumentTypeError
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_jarm.exceptions import ConfigurationError
from django_jarm.keys import (
    KEY_PARAMS,
    activate_server_key,
    activation_time,
    algs_due_for_rotation,
    describe_rotation,
    generate_server_key,
    import_server_key,
    reencrypt_server_keys,
    retire_server_key,
    rotate_server_keys,
)
from django_jarm.models import ServerKey

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(value: str) -> datetime.timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` or ``45s``."""
    match = re.fullmatch(r"(\d+)([smhdw])", value.strip())
    if not match:
        raise ArgumentTypeError(f"{value!r} is not a duration like 90d, 12h or 2w.")
    return datetime.timedelta(**{_UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = "Manage the JARM signing keys of this authorization server."

    def add_arguments(self, parser: ArgumentParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        commands.add_parser("list", help="List the keys with their status.")
        generate = commands.add_parser("generate", help="Create a key (active if none is, else next).")
        generate.add_argument("--alg", required=True, choices=list(KEY_PARAMS))
        generate.add_argument("--rsa-size", type=int, default=2048, help="RSA modulus size (>= 2048).")
        imported = commands.add_parser("import", help="Import a private key from a PEM file.")
        imported.add_argument("pem", type=Path)
        imported.add_argument("--alg", required=True, choices=list(KEY_PARAMS))
        activate = commands.add_parser("activate", help="Make a key the signing key of its algorithm.")
        retire = commands.add_parser("retire", help="Remove a key from the JWKS.")
        for subcommand in (activate, retire):
            # A kid is base64url and may start with "-": then write --kid=-abc… (or -- -abc…).
            subcommand.add_argument("kid", nargs="?")
            subcommand.add_argument("--kid", dest="kid_option", metavar="KID", help="the kid, e.g. --kid=-abc")
        activate.add_argument(
            "--force", action="store_true", help="Activate even if clients' cached JWK Sets may not have the key yet."
        )
        retire.add_argument(
            "--force", action="store_true", help="Retire even if responses the key signed may still be presented."
        )
        rotate = commands.add_parser("rotate", help="Rotate: next -> active -> retiring -> retired.")
        rotate.add_argument("--alg", action="append", choices=list(KEY_PARAMS), default=[])
        rotate.add_argument(
            "--if-older-than",
            type=duration,
            metavar="AGE",
            help="Only rotate algorithms whose active key is older than AGE (e.g. 90d). Safe from cron.",
        )
        rotate.add_argument("--force", action="store_true", help="Activate and retire without waiting.")
        commands.add_parser("reencrypt", help="Re-encrypt every stored key under the current secret.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            getattr(self, f"handle_{action}")(**options)
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc

    def handle_list(self, **options: Any) -> None:
        keys = ServerKey.objects.all()
        if not keys:
            self.stdout.write("No JARM server keys. Create one with: manage.py jarm_keys generate --alg PS256")
            return
        now = timezone.now()
        for key in keys:
            age = (now - (key.activated or key.created)).days
            self.stdout.write(f"{key.alg:6} {key.status:8} {key.kid}  {age} days")

    def handle_generate(self, **options: Any) -> None:
        if options["rsa_size"] < 2048:
            raise CommandError("--rsa-size must be at least 2048 (FAPI 1.0 Baseline 5.2.2-5).")
        key = generate_server_key(options["alg"], rsa_size=options["rsa_size"])
        self.stdout.write(f"Generated {key.alg} key {key.kid} ({key.status}).{self._when(key)}")

    def handle_import(self, **options: Any) -> None:
        try:
            pem = options["pem"].read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read the PEM file: {exc.strerror}.") from exc
        key = import_server_key(pem, options["alg"])
        self.stdout.write(f"Imported {key.alg} key {key.kid} ({key.status}).{self._when(key)}")

    @staticmethod
    def _when(key: ServerKey) -> str:
        if key.status != ServerKey.Status.NEXT:
            return ""
        return f" It can be activated from {activation_time(key):%Y-%m-%d %H:%M:%S} UTC."

    def handle_activate(self, **options: Any) -> None:
        key = activate_server_key(self._kid(options), force=options["force"])
        self.stdout.write(f"{key.alg} key {key.kid} is active.")

    def handle_retire(self, **options: Any) -> None:
        key = retire_server_key(self._kid(options), force=options["force"])
        self.stdout.write(f"{key.alg} key {key.kid} is retired.")

    @staticmethod
    def _kid(options: dict[str, Any]) -> str:
        kid = options["kid_option"] or options["kid"]
        if not kid:
            raise CommandError("Give the key id: KID, or --kid=KID when it starts with '-'.")
        return str(kid)

    def handle_rotate(self, **options: Any) -> None:
        algs: list[str] = options["alg"]
        older_than: datetime.timedelta | None = options["if_older_than"]
        if older_than is not None:
            due = algs_due_for_rotation(older_than)
            algs = [alg for alg in due if not algs or alg in algs]
            if not algs:
                self.stdout.write("No active key is old enough to rotate.")
                return
        elif not algs:
            raise CommandError("Give --alg ALG (repeatable) or --if-older-than AGE.")
        for alg in algs:
            self.stdout.write(describe_rotation(rotate_server_keys(alg, force=options["force"])))

    def handle_reencrypt(self, **options: Any) -> None:
        count = reencrypt_server_keys()
        self.stdout.write(f"Re-encrypted {count} key(s) under the current secret.")
