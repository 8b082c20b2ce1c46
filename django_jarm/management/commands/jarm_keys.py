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
from oauth2_provider.settings import oauth2_settings

from django_jarm.checks import check_settings
from django_jarm.conf import SETTING_NAME, SYMMETRIC_SIGNING_ALGS, jarm_settings
from django_jarm.exceptions import ConfigurationError
from django_jarm.keys import (
    KEY_PARAMS,
    activate_server_key,
    activation_time,
    algs_due_for_rotation,
    describe_rotation,
    generate_server_key,
    import_server_key,
    published_jwks,
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
    # Django's checks would warn that no key signs the default algorithm (W007), the very thing
    # this command fixes; handle() runs the JARM settings checks instead.
    requires_system_checks: list[str] = []

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
        errors = [message for message in check_settings() if message.is_serious()]
        if errors:
            raise CommandError(f"{errors[0].msg} {errors[0].hint} ({errors[0].id})")
        action = options["action"]
        try:
            getattr(self, f"handle_{action}")(**options)
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc

    def handle_list(self, **options: Any) -> None:
        keys = list(ServerKey.objects.all())
        dot_kids = self._dot_kids({key.kid for key in keys})
        if not keys and not dot_kids:
            self.stdout.write("No JARM server keys. Create one with: manage.py jarm_keys generate --alg PS256")
            return
        now = timezone.now()
        self.stdout.write(f"{'ALG':6} {'STATUS':8} {'KID':43}  AGE")
        for key in keys:
            age = (now - (key.activated or key.created)).days
            self.stdout.write(f"{key.alg:6} {key.status:8} {key.kid:43}  {age} days")
        for index, kid in enumerate(dot_kids):
            # DOT's OIDC keys sign ID tokens (and RS256 responses when no RS256 server key is active).
            status, source = (
                ("active", "OIDC_RSA_PRIVATE_KEY") if index == 0 else ("retiring", "OIDC_RSA_PRIVATE_KEYS_INACTIVE")
            )
            self.stdout.write(f"{'RS256':6} {status:8} {kid:43}  DOT's OIDC key ({source})")
        if not keys:
            self.stdout.write("No JARM server keys yet. Create one with: manage.py jarm_keys generate --alg PS256")

    @staticmethod
    def _dot_kids(server_kids: set[str]) -> list[str]:
        """The kids of DOT's OIDC keys in the JWK Set, the active one first."""
        if not oauth2_settings.OIDC_RSA_PRIVATE_KEY:
            return []
        return [key["kid"] for key in published_jwks()["keys"] if key["kid"] not in server_kids]

    def handle_generate(self, **options: Any) -> None:
        if options["rsa_size"] < 2048:
            raise CommandError("--rsa-size must be at least 2048 (FAPI 1.0 Baseline 5.2.2-5).")
        key = generate_server_key(options["alg"], rsa_size=options["rsa_size"])
        self.stdout.write(f"Generated {key.alg} key {key.kid} ({key.status}).{self._when(key)}")
        self._warn_if_the_default_cannot_sign(key.alg)

    def _warn_if_the_default_cannot_sign(self, alg: str) -> None:
        """Say so when clients without their own algorithm still get ``server_error`` (check E009)."""
        default = jarm_settings.DEFAULT_SIGNING_ALG
        if alg == default or default in SYMMETRIC_SIGNING_ALGS:
            return
        if default == "RS256" and oauth2_settings.OIDC_RSA_PRIVATE_KEY:
            return  # DOT's OIDC key signs RS256
        if ServerKey.objects.filter(alg=default, status=ServerKey.Status.ACTIVE).exists():
            return
        self.stderr.write(
            self.style.WARNING(
                f"Warning: {SETTING_NAME}['DEFAULT_SIGNING_ALG'] is {default!r} and no key signs {default}, so "
                f"clients without their own algorithm get server_error. Set "
                f'{SETTING_NAME} = {{"DEFAULT_SIGNING_ALG": "{alg}"}} in your settings, or run '
                f"`manage.py jarm_keys generate --alg {default}`."
            )
        )

    def handle_import(self, **options: Any) -> None:
        try:
            pem = options["pem"].read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read the PEM file: {exc.strerror}.") from exc
        key = import_server_key(pem, options["alg"])
        self.stdout.write(f"Imported {key.alg} key {key.kid} ({key.status}).{self._when(key)}")
        self._warn_if_the_default_cannot_sign(key.alg)

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
