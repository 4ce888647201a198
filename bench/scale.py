"""Scale: 500 senses in 20 groups at 1 s intervals: the share of computes started within 50 ms
of their tick, the kernel's CPU, and the total RSS of kernel and workers.

    .venv/bin/python bench/scale.py [--quick] [--senses N]

Goal: >= 99 % started within 50 ms.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import embedded_kernel, interval_config, lateness_recorder, percentile, print_table

QUICK = "--quick" in sys.argv
SECONDS = 15.0 if QUICK else 60.0
SENSES = int(sys.argv[sys.argv.index("--senses") + 1]) if "--senses" in sys.argv else 500
GROUPS = 20


async def measure(senses: int) -> tuple[list[float], float, float]:
    lateness, on_compute = lateness_recorder()
    code = {f"s{n}": "def compute(ctx):\n    return None\n" for n in range(senses)}
    me = psutil.Process()
    async with embedded_kernel(interval_config(senses, GROUPS, "1s"), code, on_compute=on_compute):
        await anyio.sleep(2.0)
        lateness.clear()
        cpu_before, wall_before = sum(me.cpu_times()[:2]), time.monotonic()
        await anyio.sleep(SECONDS)
        cpu = (sum(me.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before) * 100
        rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
    return lateness, cpu, rss / 2**20


def main() -> None:
    lateness, cpu, rss = anyio.run(measure, SENSES)
    within = sum(1 for value in lateness if value <= 50) / max(1, len(lateness)) * 100
    print_table(
        f"scale: {SENSES} senses in {GROUPS} groups @1 s for {SECONDS:g} s ({len(lateness)} computes)",
        [
            (
                "started within 50 ms",
                f"{within:.2f} %",
                "-",
                "-",
                ">= 99 %",
                "yes" if within >= 99 else "NO",
            ),
            (
                "lateness p50 / p99 ms",
                f"{percentile(lateness, 50):.1f} / {percentile(lateness, 99):.1f}",
                "-",
                "-",
                "-",
                "-",
            ),
            ("kernel CPU", f"{cpu:.1f} %", "-", "-", "-", "-"),
            ("RSS kernel + workers", f"{rss:.0f} MB", "-", "-", "-", "-"),
        ],
    )


if __name__ == "__main__":
    main()
