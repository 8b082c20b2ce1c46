#!/usr/bin/env python
"""django_jarm performance benchmarks.

    python benchmarks/run.py              # full run, 2 to 3 minutes
    python benchmarks/run.py --quick      # smoke run, about 20 seconds
    python benchmarks/run.py --only 2 4   # some sections only
    python benchmarks/run.py --profile    # then where the time of each request goes (cProfile)

Every figure is a ratio or a difference against a baseline measured in the same run, in the
same process: the calls of all variants of a figure alternate (A B C A B C ...), a round keeps
the median call of each variant, and a figure is the median over rounds of the ratio (or the
difference) within each round. See benchmarks/README.md; the figures are in figures.py, the
method in stats.py, the data in world.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402

from benchmarks.figures import FULL, QUICK, SECTIONS  # noqa: E402
from benchmarks.profiling import profile  # noqa: E402
from benchmarks.stats import Figure, use_clock  # noqa: E402
from benchmarks.world import CASE_LABELS, Grant, World, authorize_url, build_world, get  # noqa: E402


def environment() -> str:
    packages = ("Django", "django-oauth-toolkit", "oauthlib", "jwcrypto", "cryptography")
    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    return f"Python {platform.python_version()}, {versions}; {os.cpu_count()} CPUs"


def profiles(world: World, samples_calls: int) -> None:
    """Profile one request of every kind figure 2 measures, and the JWKS and discovery views."""
    browser = world.browser
    urls = {
        "plain DOT (query)": authorize_url("/dot/authorize/", world.apps["ES256"], "query"),
        "JARM view, query": authorize_url("/o/authorize/", world.apps["ES256"], "query"),
        **{
            f"JARM view, query.jwt, {label}": authorize_url("/o/authorize/", world.apps[case], "query.jwt")
            for case, label in CASE_LABELS.items()
        },
    }
    for name, url in urls.items():
        profile(f"GET authorize, {name}", get(browser, url), 300, samples_calls=samples_calls)
        Grant.objects.all().delete()
    anonymous = Client()
    for url in ("/o/.well-known/jwks.json", "/o/.well-known/openid-configuration"):
        profile(f"GET {url}", get(anonymous, url), 1000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter batches (a smoke run)")
    parser.add_argument("--only", nargs="+", type=int, metavar="N", help="run only these sections (1 to 4)")
    parser.add_argument("--rounds", type=float, default=1.0, metavar="F", help="F times the rounds (noisy machine)")
    parser.add_argument("--profile", action="store_true", help="then profile every request figure 2 measures")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is not met")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of the thread's CPU time")
    args = parser.parse_args(argv)
    mode = (QUICK if args.quick else FULL).scaled(args.rounds)
    use_clock(time.perf_counter if args.wall else time.thread_time)
    started = time.perf_counter()
    print(f"django_jarm benchmarks ({mode.name}): {environment()}")
    print(
        f"clock: {'wall' if args.wall else 'CPU time of the thread'}; rounds: {mode.jose_rounds} (1), "
        f"{mode.request_rounds} (2), {mode.metadata_rounds} (3), {mode.scaling_rounds} (4); "
        "each figure is the median over rounds of a ratio or difference within a round\n"
    )
    world = build_world()
    results: list[Figure] = []
    for number, (title, figure_function) in enumerate(SECTIONS, 1):
        if args.only and number not in args.only:
            continue
        print(title)
        for figure in figure_function(world, mode):
            print(figure.summary_line())
            for line in figure.details:
                print(f"          {line}")
            results.append(figure)
        print()
    print("Summary")
    print(f"  {'figure':<69} {'value':>8}  {'target':<9} result")
    for figure in results:
        print(figure.summary_line())
    unmet = [figure for figure in results if figure.met is False]
    targets = sum(figure.met is not None for figure in results)
    print(f"\n{targets - len(unmet)} of {targets} targets met; took {time.perf_counter() - started:.0f} s")
    if args.profile:
        profiles(world, samples_calls=300 if args.quick else 1500)
    return 1 if args.check and unmet else 0


if __name__ == "__main__":
    sys.exit(main())
