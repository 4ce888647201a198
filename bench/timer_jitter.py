"""Interval lateness: from the tick an interval compute was due to its start in the worker, 50
senses at 100 ms (in 10 groups of 5), against APScheduler 3 interval jobs and APScheduler 4
interval schedules (from `.venv/peers`, in an interpreter of its own) calling a function
in-process, in the same run.

    .venv/bin/python bench/timer_jitter.py [--quick]

Goals: p99 <= 5 ms, and <= 0.5 x each APScheduler's.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    embedded_kernel,
    interval_config,
    lateness_recorder,
    percentile,
    print_table,
    run_peer,
)

QUICK = "--quick" in sys.argv
SECONDS = 5.0 if QUICK else 15.0
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


def apscheduler4_lateness() -> list[float]:
    result = run_peer("aps4_lateness.py", str(SENSES), str(SECONDS), timeout=300)
    return [float(value) for value in result["lateness_ms"]]


def main() -> None:
    nerve = anyio.run(nerve_lateness)
    aps3 = apscheduler_lateness()
    aps4 = apscheduler4_lateness()
    p50, p99 = percentile(nerve, 50), percentile(nerve, 99)
    rows = [("p50", f"{p50:.2f}", "-", "-", "-", "-"), ("p99", f"{p99:.2f}", "-", "-", "<= 5",
            "yes" if p99 <= 5 else "NO")]  # fmt: skip
    for name, peer in (("APScheduler 3", aps3), ("APScheduler 4", aps4)):
        if peer is None:
            rows.append(
                (f"p99 against {name}", f"{p99:.2f}", f"{name} not installed", "-", "-", "-")
            )
            continue
        ratio = p99 / percentile(peer, 99)
        rows.append(
            (
                f"p99 against {name} (its p50 {percentile(peer, 50):.2f})",
                f"{p99:.2f}",
                f"{percentile(peer, 99):.2f} {name}",
                f"{ratio:.2f}",
                "<= 0.5 x",
                "yes" if ratio <= 0.5 else "NO",
            )
        )
    print_table(
        f"interval lateness, {SENSES} senses @100 ms in {GROUPS} groups (ms, {len(nerve)} computes)",
        rows,
    )


if __name__ == "__main__":
    main()
