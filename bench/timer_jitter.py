"""Interval lateness: from the tick an interval compute was due to its start in the worker, 50
senses at 100 ms (in 10 groups of 5), against APScheduler 3 interval jobs calling a function
in-process in the same run.

    .venv/bin/python bench/timer_jitter.py [--quick]

Goal: p99 <= 5 ms.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _common import embedded_kernel, interval_config, lateness_recorder, percentile, print_table

QUICK = "--quick" in sys.argv
SECONDS = 5.0 if QUICK else 20.0
SENSES = 50
GROUPS = 10


async def nerve_lateness() -> list[float]:
    lateness, on_compute = lateness_recorder()
    code = {f"s{n}": "def compute(ctx):\n    return None\n" for n in range(SENSES)}
    async with embedded_kernel(
        interval_config(SENSES, GROUPS, "100ms"), code, on_compute=on_compute
    ):
        await anyio.sleep(1.0)  # warm up
        lateness.clear()
        await anyio.sleep(SECONDS)
    return lateness


def apscheduler_lateness() -> list[float] | None:
    try:
        from apscheduler.schedulers.background import BackgroundScheduler
    except ImportError:
        return None
    lateness: list[float] = []
    lock = threading.Lock()
    scheduler = BackgroundScheduler()
    start = time.time() + 0.5

    def job(index: int) -> None:
        now = time.time()
        due = start + round((now - start) / 0.1) * 0.1  # the 100 ms grid this run belongs to
        with lock:
            lateness.append((now - due) * 1000)

    from datetime import datetime

    for n in range(SENSES):
        scheduler.add_job(
            job,
            "interval",
            seconds=0.1,
            args=[n],
            next_run_time=datetime.fromtimestamp(start),
            max_instances=5,
            misfire_grace_time=1,
        )
    scheduler.start()
    time.sleep(1.0 + SECONDS)
    scheduler.shutdown(wait=True)
    return lateness[SENSES * 5 :]


def main() -> None:
    nerve = anyio.run(nerve_lateness)
    aps = apscheduler_lateness()
    p50, p99 = percentile(nerve, 50), percentile(nerve, 99)
    base50 = f"{percentile(aps, 50):.2f} APScheduler 3" if aps else "APScheduler 3 not installed"
    base99 = f"{percentile(aps, 99):.2f} APScheduler 3" if aps else "-"
    ratio = f"{p99 / percentile(aps, 99):.2f}" if aps else "-"
    print_table(
        f"interval lateness, {SENSES} senses @100 ms in {GROUPS} groups (ms, {len(nerve)} computes)",
        [
            ("p50", f"{p50:.2f}", base50, "-", "-", "-"),
            ("p99", f"{p99:.2f}", base99, ratio, "<= 5", "yes" if p99 <= 5 else "NO"),
        ],
    )


if __name__ == "__main__":
    main()
