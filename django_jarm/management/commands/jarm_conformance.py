"""``manage.py jarm_conformance``: the conformance suite's JARM checks, before certification.

jarm_conformance                          the server, then every client
jarm_conformance --client ID [--client …] only these clients (and the server)
jarm_conformance --base-url URL           also the discovery and JWKS checks over HTTP at URL
jarm_conformance --json                   machine-readable results
jarm_conformance --strict                 a WARN fails the run too

The flows run through the real authorization view in this process, inside a transaction that is
rolled back (:mod:`django_jarm.conformance`). The exit status is 1 when any check fails.
"""

from __future__ import annotations

import json
import logging
from argparse import ArgumentParser
from collections import Counter
from itertools import groupby
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_jarm.conformance import FAIL, PASS, WARN, CheckResult, Report, run

#: Worst first.
SEVERITY = {FAIL: 0, WARN: 1, "N/A": 2, PASS: 3}


class Command(BaseCommand):
    help = "Run the OpenID conformance suite's JARM checks against this server and its clients."
    # The run reports what the system checks would stop it for, with the fix.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--client", action="append", dest="clients", metavar="CLIENT_ID", help="Only this client (repeatable)."
        )
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
        parser.add_argument(
            "--base-url",
            help="A running deployment (e.g. https://auth.example.com): check its discovery and JWK Set over HTTP.",
        )
        parser.add_argument(
            "--host", help="Host the in-process requests are sent to (default: the first ALLOWED_HOSTS entry)."
        )
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds per HTTP fetch (default 10).")
        parser.add_argument("--strict", action="store_true", help="Exit with status 1 on a WARN as well.")

    def handle(self, *args: Any, **options: Any) -> None:
        # Every flow is an authorization response the endpoint logs at INFO: kept out of the
        # table unless asked for (-v 2); warnings and errors still show.
        package_logger = logging.getLogger("django_jarm")
        level = package_logger.level
        if options["verbosity"] < 2:
            package_logger.setLevel(max(level, logging.WARNING))
        try:
            report = run(
                options["clients"], base_url=options["base_url"], host=options["host"], timeout=options["timeout"]
            )
        finally:
            package_logger.setLevel(level)
        counts = Counter(result.status for result in report.results)
        if options["json"]:
            document = {"results": [result.as_dict() for result in report.results], "summary": dict(counts)}
            self.stdout.write(json.dumps(document, indent=2))
        else:
            self.write_table(report, verbose=options["verbosity"] >= 2)
            self.stdout.write(
                "Summary: " + ", ".join(f"{counts.get(status, 0)} {status}" for status in (PASS, WARN, FAIL, "N/A"))
            )
        failed = counts.get(FAIL, 0) + (counts.get(WARN, 0) if options["strict"] else 0)
        if failed:
            raise CommandError(f"{failed} check(s) {'failed or warned' if options['strict'] else 'failed'}.")

    def write_table(self, report: Report, *, verbose: bool) -> None:
        """One block per subject; one row per check and mode (the worst of its outcomes)."""
        for (scope, client_id), rows in groupby(report.results, key=lambda r: (r.scope, r.client_id)):
            self.stdout.write(self.style.MIGRATE_HEADING(f"client {client_id}" if client_id else scope))
            for mode, in_mode in groupby(rows, key=lambda r: r.mode):
                self.write_rows(list(in_mode), mode=mode, verbose=verbose)

    def write_rows(self, rows: list[CheckResult], *, mode: str, verbose: bool) -> None:
        by_check: dict[str, list[CheckResult]] = {}
        for row in rows:
            by_check.setdefault(row.check, []).append(row)
        passed = 0
        not_applicable: dict[str, list[str]] = {}
        for check, results in by_check.items():
            worst = min(results, key=lambda r: SEVERITY[r.status])
            if worst.status == PASS and not verbose and mode:
                passed += 1
                continue
            if worst.status == "N/A" and not verbose:
                not_applicable.setdefault(worst.reason, []).append(check)
                continue
            outcomes = [r.outcome for r in results if r.status == worst.status and r.outcome]
            where = f"{mode:<13} " if mode else ""
            label = f" [{', '.join(outcomes)}]" if outcomes and len(outcomes) < len(results) else ""
            self.stdout.write(f"  {where}{self.styled(worst.status)}  {check}{label}: {worst.reason}")
            if worst.fix:
                self.stdout.write(f"  {' ' * len(where)}      fix: {worst.fix}")
        for reason, checks in not_applicable.items():
            where = f"{mode:<13} " if mode else ""
            self.stdout.write(f"  {where}{self.styled('N/A')}  {len(checks)} check(s): {reason}")
        if passed:
            outcomes = sorted({row.outcome for row in rows if row.outcome})
            per = f" x {len(outcomes)} outcomes ({', '.join(outcomes)})" if outcomes else ""
            where = f"{mode:<13} " if mode else ""
            self.stdout.write(f"  {where}{self.styled(PASS)}  {passed} check(s){per}")

    def styled(self, status: str) -> str:
        text = f"{status:<4}"
        if status == FAIL:
            return str(self.style.ERROR(text))
        if status == WARN:
            return str(self.style.WARNING(text))
        if status == PASS:
            return str(self.style.SUCCESS(text))
        return text
