"""Timing and statistics of the benchmarks: interleaved rounds, CPU time, medians.

The method, in three rules (benchmarks/README.md says why):

- Calls are timed with the CPU time of the benchmark's thread by default (``--wall`` for the
  wall clock), the clock's own cost subtracted.
- Within a round the variants of a figure are called in turn (A B C, C A B, B C A ...), in an
  order shuffled for every pass, so that each variant follows each other one equally often;
  a round keeps each variant's median call.
- A figure is the median, over rounds, of a ratio or a difference computed within each round;
  or, for a small difference between two requests, the median of the differences of calls made
  back to back (``measure_pairs``).

Nothing here knows about Django or django_jarm.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Seconds per call of each variant: one value per round.
Samples = dict[str, list[float]]


@dataclass
class Variant:
    """One thing to time: ``call`` is timed; ``enter`` (untimed) switches to its configuration;
    ``before`` (untimed) runs before every timed call, to leave the CPU caches as a request does."""

    call: Callable[[], Any]
    enter: Callable[[], None] | None = None
    warmup: int = 3
    before: Callable[[], Any] | None = None


_clock: Callable[[], float] = time.thread_time
_clock_overhead = 0.0


def use_clock(clock: Callable[[], float]) -> None:
    """Time with ``clock`` from now on; its own cost (two readings) is measured and subtracted."""
    global _clock, _clock_overhead
    _clock, _clock_overhead = clock, 0.0
    _clock_overhead = median([timed(lambda: None) for _ in range(2000)])


def timed(call: Callable[[], Any]) -> float:
    """Seconds one call of ``call`` takes on the current clock."""
    clock = _clock
    start = clock()
    call()
    return clock() - start - _clock_overhead


def rotation(names: list[str], index: int) -> list[str]:
    """The order of round ``index``: rotated, and reversed every other round."""
    shift = index % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if index % 2 else order


def measure(
    variants: dict[str, Variant], rounds: int, calls: int, *, before_round: Callable[[], None] | None = None
) -> Samples:
    """Per round, the median of ``calls`` calls of every variant, the calls alternating.

    A burst of load from elsewhere on the machine hits every variant alike, and the median
    drops the calls it hit hardest. The order is shuffled for every pass through the variants
    (seeded, so a run can be repeated): what a call costs depends on what ran before it (the
    CPU caches it left), and a fixed or rotated order would give each variant the same
    predecessors all run long. The garbage collector runs between rounds (as in timeit).
    """
    names = list(variants)
    for variant in variants.values():
        for _ in range(variant.warmup):
            variant.call()
    samples: Samples = {name: [] for name in names}
    shuffled = random.Random(len(names) * 1_000 + rounds)
    for _round in range(rounds):
        if before_round is not None:
            before_round()
        times: Samples = {name: [] for name in names}
        gc.collect()
        gc.disable()
        try:
            for _ in range(calls):
                for name in shuffled.sample(names, len(names)):
                    variant = variants[name]
                    if variant.before is not None:
                        variant.before()
                    times[name].append(timed(variant.call))
        finally:
            gc.enable()
        for name in names:
            samples[name].append(median(times[name]))
    return samples


def measure_pairs(
    pairs: dict[str, tuple[Variant, Variant]],
    rounds: int,
    calls: int,
    *,
    before_round: Callable[[], None] | None = None,
) -> Samples:
    """For each pair ``(A, B)``, ``A - B`` of calls made back to back, ``rounds * calls`` times.

    The two calls of a pair run one right after the other, in a random order, so a slowdown
    from elsewhere on the machine (which lasts longer than two calls) hits both; the pairs run
    in an order shuffled for every pass. On a shared machine the time of one request may vary
    by half, while the difference of two adjacent ones varies by a few percent of that: the
    median of the paired differences is the steadiest figure of a small difference.
    """
    names = list(pairs)
    for first, second in pairs.values():
        for variant in (first, second):
            for _ in range(variant.warmup):
                variant.call()
    results: Samples = {name: [] for name in names}
    shuffled = random.Random(len(names) * 1_000 + rounds + 1)
    for _round in range(rounds):
        if before_round is not None:
            before_round()
        gc.collect()
        gc.disable()
        try:
            for _ in range(calls):
                for name in shuffled.sample(names, len(names)):
                    first, second = pairs[name]
                    if shuffled.random() < 0.5:
                        a, b = timed(first.call), timed(second.call)
                    else:
                        b, a = timed(second.call), timed(first.call)
                    results[name].append(a - b)
        finally:
            gc.enable()
    return results


def measure_configurations(variants: dict[str, Variant], rounds: int, calls: int) -> Samples:
    """Like :func:`measure` for variants that need ``enter()`` first: one block of calls per
    variant per round, the blocks alternating round after round."""
    names = list(variants)
    samples: Samples = {name: [] for name in names}
    for index in range(rounds):
        for name in rotation(names, index):
            variant = variants[name]
            if variant.enter is not None:
                variant.enter()
            for _ in range(variant.warmup):
                variant.call()
            gc.collect()
            gc.disable()
            try:
                times = [timed(variant.call) for _ in range(calls)]
            finally:
                gc.enable()
            samples[name].append(median(times))
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def quartile(values: Sequence[float], which: int) -> float:
    """The first (``which=1``) or third (``which=3``) quartile of ``values``."""
    return statistics.quantiles(values, n=4)[which - 1]


def per_round(combine: Callable[..., float], *series: Sequence[float]) -> list[float]:
    """``combine`` applied within each round: ``per_round(lambda a, b: a - b, jarm, plain)``."""
    return [combine(*values) for values in zip(*series, strict=True)]


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over rounds of numerator / denominator measured in the same round."""
    return median(per_round(lambda a, b: a / b, numerator, denominator))


def paired_difference(minuend: Sequence[float], subtrahend: Sequence[float]) -> list[float]:
    """Per round, minuend - subtrahend."""
    return per_round(lambda a, b: a - b, minuend, subtrahend)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} µs"


@dataclass
class Figure:
    """One result: a ratio, or a time in seconds (``unit="µs"``), against an optional target."""

    key: str
    label: str
    value: float
    #: "<=" or ">=", or "" for a figure reported for information only.
    op: str = ""
    target: float = 0.0
    unit: str = "ratio"
    details: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool | None:
        if not self.op:
            return None
        return self.value <= self.target if self.op == "<=" else self.value >= self.target

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "info"}[self.met]

    def _number(self, value: float) -> str:
        return f"{value * 1e6:.0f} µs" if self.unit == "µs" else f"{value:.2f}"

    @property
    def value_text(self) -> str:
        return self._number(self.value)

    @property
    def target_text(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self._number(self.target)}" if self.op else "—"

    def summary_line(self) -> str:
        return f"  {self.key:<4} {self.label:<64} {self.value_text:>8}  {self.target_text:<9} {self.verdict}"
