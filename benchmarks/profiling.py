"""``run.py --profile``: where the time of one request goes.

Two views of the same request:

- **By package**, from a statistical profiler on the process's CPU time (``SIGPROF`` from
  ``setitimer(ITIMER_PROF)``): each sample goes to the package of the innermost frame that
  belongs to a package we name (standard-library and C code count for the package that called
  them). Sampling adds almost nothing to the request, so the shares are those of a normal run.
  The timer ticks with the kernel's clock (every 4 ms at 250 Hz), hence many requests.
- **By function**, from cProfile: django_jarm's functions, then the top functions by own time.
  cProfile's overhead inflates pure Python code (the ORM, oauthlib) several times more than
  work done in C (the cryptography): read those tables for where to look, not for shares.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import sysconfig
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Function = tuple[str, int, str]

#: Package buckets, matched on the path of a frame's file, first match wins.
PACKAGES = [
    ("django_jarm", f"{os.sep}django_jarm{os.sep}"),
    ("DOT", f"{os.sep}oauth2_provider{os.sep}"),
    ("oauthlib", f"{os.sep}oauthlib{os.sep}"),
    ("jwcrypto + cryptography", f"{os.sep}jwcrypto{os.sep}"),
    ("jwcrypto + cryptography", f"{os.sep}cryptography{os.sep}"),
    ("Django: ORM and SQLite", f"{os.sep}django{os.sep}db{os.sep}"),
    ("Django: test client (no server has it)", f"{os.sep}django{os.sep}test{os.sep}"),
    ("Django: request, middleware, sessions, auth", f"{os.sep}django{os.sep}"),
    ("benchmark", f"{os.sep}benchmarks{os.sep}"),
]
STDLIB = sysconfig.get_paths()["stdlib"]


def package_of_file(filename: str) -> str | None:
    """The bucket of a source file; None for the standard library and unknown code."""
    for name, marker in PACKAGES:
        if marker in filename:
            return name
    return None


#: django_jarm.tokens' functions that are calls into ``cryptography`` (and the standard library's
#: os.urandom and hmac) with a few lines around them (the raw R || S of an ECDSA signature, the
#: PKCS #7 padding): the signature and key wrapping prepared per key, and the content encryption.
#: A C call has no frame of its own, so their samples would otherwise count for django_jarm.
CRYPTOGRAPHY_CALLS = frozenset({"rsa_signature", "ec_signature", "rsa_wrap", "encrypt_content"})


def package_of_frame(frame: FrameType | None) -> str:
    """The package of the innermost frame that has one (a caller's, for stdlib code)."""
    while frame is not None:
        code = frame.f_code
        if code.co_name in CRYPTOGRAPHY_CALLS and code.co_filename.endswith(f"django_jarm{os.sep}tokens.py"):
            return "jwcrypto + cryptography"
        package = package_of_file(code.co_filename)
        if package is not None:
            return package
        frame = frame.f_back
    return "other"


def sampled_packages(call: Callable[[], Any], calls: int) -> Counter[str]:
    """CPU-time samples of ``calls`` calls of ``call``, counted by package."""
    counts: Counter[str] = Counter()

    def on_sample(signum: int, frame: FrameType | None) -> None:
        counts[package_of_frame(frame)] += 1

    previous = signal.signal(signal.SIGPROF, on_sample)
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
    try:
        for _ in range(calls):
            call()
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, previous)
    return counts


def _where(function: Function) -> str:
    filename, line, name = function
    short = filename.replace(str(ROOT) + os.sep, "").split("site-packages" + os.sep)[-1]
    return f"{short}:{line}({name})"


def profile(label: str, call: Callable[[], Any], calls: int, *, samples_calls: int = 0, limit: int = 14) -> None:
    """Print where the time of ``call`` goes: by package (``samples_calls`` sampled calls, if
    any), then cProfile's tables over ``calls`` calls, per call."""
    for _ in range(3):
        call()
    print(f"\n--- profile: {label} ---")
    if samples_calls:
        started = time.process_time()
        counts = sampled_packages(call, samples_calls)
        per_call = (time.process_time() - started) / samples_calls
        total = sum(counts.values())
        print(
            f"    by package ({total} CPU-time samples over {samples_calls} calls, {per_call * 1e6:.0f} µs per call):"
        )
        for package, count in counts.most_common():
            print(f"      {package:<44} {count / total:6.1%}  ≈ {count / total * per_call * 1e6:6.0f} µs")
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for _ in range(calls):
        call()
    profiler.disable()
    stats: dict[Function, tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    under_profiler = sum(entry[2] for entry in stats.values()) / calls

    def rows(chosen: list[tuple[Function, tuple[Any, ...]]]) -> None:
        print(f"    {'cum µs':>9} {'own µs':>8} {'calls':>6}  function   (per call, under cProfile)")
        for function, (_, ncalls, own, cumulative, _callers) in chosen[:limit]:
            numbers = f"{cumulative / calls * 1e6:9.1f} {own / calls * 1e6:8.1f} {ncalls / calls:6.1f}"
            print(f"    {numbers}  {_where(function)}")

    print(f"    cProfile, {calls} calls ({under_profiler * 1e6:.0f} µs per call under the profiler)")
    ours = sorted(
        ((f, v) for f, v in stats.items() if package_of_file(f[0]) == "django_jarm"), key=lambda item: -item[1][3]
    )
    if ours:
        print("    django_jarm's functions:")
        rows(ours)
    print("    top by own time:")
    rows(sorted(stats.items(), key=lambda item: -item[1][2]))
