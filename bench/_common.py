"""Helpers shared by the benchmarks: repeated, alternating measurements and a printed table."""

from __future__ import annotations

import platform
import statistics
import sys
from collections.abc import Sequence

import psutil


def machine() -> str:
    return (
        f"{platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {sys.version.split()[0]}"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def print_table(title: str, rows: Sequence[Sequence[str]]) -> None:
    header = ("figure", "nerve", "baseline", "ratio", "goal", "holds")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{title} ({machine()})")
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
