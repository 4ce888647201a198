"""Interval lateness: from the tick an interval compute was due to its start in the worker, for
two loads, 50 senses at 100 ms (in 10 groups of 5) and 500 senses at 1 s (in 50 groups of 10),
against APScheduler 3 interval jobs and APScheduler 4 interval schedules (from `.venv/peers`, in an
interpreter of its own) calling a function in-process, in the same run.

    .venv/bin/python bench/timer_jitter.py [--quick]

Goals: p99 <= 5 ms, and <= 0.5 x each APScheduler's.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Load:
    senses: int
    groups: int
    interval_s: float
    seconds: float

    @property
    def title(self) -> str:
        every = (
            f"{self.interval_s * 1000:.0f} ms" if self.interval_s < 1 else f"{self.interval_s:g} s"
        )
        return f"{self.senses} senses @{every} in {self.groups} groups"


LOADS = (
    Load(50, 10, 0.1, 2.0 if QUICK else 10.0),
    Load(500, 50, 1.0, 2.0 if QUICK else 6.0),
)


async def nerve_lateness(load: Load) -> list[float]:
    lateness, on_compute = lateness_recorder()
    code = {f"s{n}": "def compute(ctx):\n    return None\n" for n in range(load.senses)}
    config = interval_config(load.senses, load.groups, f"{load.interval_s * 1000:.0f}ms")
    async with embedded_kernel(config, code, on_compute=on_compute):
        await anyio.sleep(1.0 + load.interval_s)  # warm up: every group's worker has computed
        lateness.clear()
        await anyio.sleep(load.seconds)
    return lateness


def apscheduler_lateness(load: Load) -> list[float] | None:
    try:
        from apscheduler.schedulers.background import BackgroundScheduler
    except ImportError:
        return None
    lateness: list[float] = []
    lock = threading.Lock()
    scheduler = BackgroundScheduler()
    start = time.time() + 0.5
    step = load.interval_s

    def job(index: int) -> None:
        now = time.time()
        due = start + round((now - start) / step) * step  # the grid this run belongs to
        with lock:
            lateness.append((now - due) * 1000)

    from datetime import datetime

    for n in range(load.senses):
        scheduler.add_job(
            job,
            "interval",
            seconds=step,
            args=[n],
            next_run_time=datetime.fromtimestamp(start),
            max_instances=5,
            misfire_grace_time=1,
        )
    scheduler.start()
    time.sleep(1.0 + step + load.seconds)
    scheduler.shutdown(wait=True)
    warm_up = round((1.0 + step) / step) * load.senses  # what ran before the measure began
    return lateness[warm_up:]


def apscheduler4_lateness(load: Load) -> list[float]:
    args = (str(load.senses), str(load.seconds), str(load.interval_s))
    result = run_peer("aps4_lateness.py", *args, timeout=300)
    return [float(value) for value in result["lateness_ms"]]


def measure(load: Load) -> None:
    nerve = anyio.run(nerve_lateness, load)
    aps3 = apscheduler_lateness(load)
    aps4 = apscheduler4_lateness(load)
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
    print_table(f"interval lateness, {load.title} (ms, {len(nerve)} computes)", rows)


def main() -> None:
    for load in LOADS[:1] if QUICK else LOADS:  # the quick pass: the first load only
        measure(load)


if __name__ == "__main__":
    main()
