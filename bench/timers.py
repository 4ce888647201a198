"""Timers at scale: 10,000 pending delayed triggers and 1,000 cron reflexes (3,000 and 300 in the
quick pass) in one kernel. What the idle kernel spends on them (CPU of its process while none is
due), and how late they fire: delayed
triggers coming due every 10 ms, and (full run only: it waits for a minute to begin) 1,000 cron
reflexes firing at the same instant, the start of a minute. APScheduler 3 in the same run, as the
peer: the same numbers of date and cron jobs in a BackgroundScheduler, its idle CPU, its date jobs'
lateness and (full run) 1,000 cron jobs every minute.

    .venv/bin/python bench/timers.py [--quick]

Goals: idle CPU <= 1 % of a core; fire p99 <= 10 ms late.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import embedded_kernel, percentile, print_table

QUICK = "--quick" in sys.argv
IDLE_S = 3.0 if QUICK else 10.0
PENDING, CRONS, GROUPS = (3_000, 300, 10) if QUICK else (10_000, 1_000, 10)
FIRING = 150 if QUICK else 1_000  # delayed triggers due during the measure, 10 ms apart


def cron_config(every_minute: bool) -> str:
    """1,000 senses with a cron reflex each: hourly at minutes spread over the hour (none due
    while idle), or all every minute."""
    lines = ["senses:"]
    lines += [f"  s{n}: {{group: g{n % GROUPS}}}" for n in range(CRONS)]
    lines.append("reflexes:")
    for n in range(CRONS):
        minute = "*" if every_minute else str((time.gmtime().tm_min + 30 + n % 20) % 60)
        lines.append(f"  - sense: s{n}\n    cron: '{minute} * * * *'\n    timezone: UTC")
    return "\n".join(lines) + "\n"


def cpu_share(seconds: float) -> float:
    """The share of one core this process used over the next `seconds` (blocking)."""
    process = psutil.Process()
    before, began = process.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, took = process.cpu_times(), time.monotonic() - began
    return (after.user + after.system - before.user - before.system) / took


async def nerve_timers() -> dict[str, Any]:
    code = {f"s{n}": "def compute(ctx):\n    return None\n" for n in range(CRONS)}
    late: list[float] = []
    async with embedded_kernel(cron_config(every_minute=False), code) as kernel:
        delayed = kernel.delayed  # type: ignore[attr-defined]
        fire = delayed.timers._fire

        async def timed(timer: Any) -> Any:
            late.append(time.time() * 1000 - timer.due_ms)
            return await fire(timer)

        delayed.timers._fire = timed
        far = int(time.time() * 1000) + 3_600_000
        began = time.monotonic()
        for n in range(PENDING):
            await delayed.sense_at(f"s{n % CRONS}", far + random.randrange(3_600_000))
        added_per_s = PENDING / (time.monotonic() - began)
        await anyio.sleep(2.0)  # settle: the marks, the writer
        idle = await anyio.to_thread.run_sync(cpu_share, IDLE_S)
        first = int(time.time() * 1000) + 1_000
        for n in range(FIRING):
            await delayed.sense_at(f"s{n % CRONS}", first + 10 * n)
        await anyio.sleep(1.0 + FIRING * 0.01 + 1.0)
    return {"idle": idle, "late": late, "added_per_s": added_per_s}


async def nerve_cron_lateness() -> list[float]:
    """1,000 cron reflexes every minute: how late each fire is, at the minute that begins next."""
    code = {f"s{n}": "def compute(ctx):\n    return None\n" for n in range(CRONS)}
    late: list[float] = []
    async with embedded_kernel(cron_config(every_minute=True), code) as kernel:
        scheduler = kernel._scheduler  # type: ignore[attr-defined]
        ticks = scheduler._timers
        request = ticks._request

        def timed(sense: str, kind: Any, tick: float) -> None:
            late.append((time.time() - tick) * 1000)
            request(sense, kind, tick)

        ticks._request = timed
        await anyio.sleep(62 - time.time() % 60)
    return late


def apscheduler_timers() -> dict[str, Any] | None:
    try:
        from apscheduler.schedulers.background import BackgroundScheduler
    except ImportError:
        return None
    from datetime import datetime

    late: list[float] = []
    lock = threading.Lock()

    def job(due: float) -> None:
        with lock:
            late.append((time.time() - due) * 1000)

    scheduler = BackgroundScheduler()
    scheduler.start()
    for n in range(CRONS):
        scheduler.add_job(job, "cron", minute=(time.gmtime().tm_min + 30 + n % 20) % 60, args=[0])
    far = time.time() + 3600
    for _ in range(PENDING):
        due = far + random.random() * 3600
        scheduler.add_job(job, "date", run_date=datetime.fromtimestamp(due), args=[due])
    time.sleep(2.0)
    idle = cpu_share(IDLE_S)
    first = time.time() + 1.0
    for n in range(FIRING):
        due = first + 0.01 * n
        scheduler.add_job(
            job, "date", run_date=datetime.fromtimestamp(due), args=[due], misfire_grace_time=60
        )
    time.sleep(1.0 + FIRING * 0.01 + 1.0)
    scheduler.shutdown(wait=True)
    return {"idle": idle, "late": late, "cron_late": [] if QUICK else apscheduler_cron_lateness()}


def apscheduler_cron_lateness() -> list[float]:
    """APScheduler 3's cron trigger, 1,000 jobs every minute: how late each job starts, at the
    minute that begins next (its thread pool as it comes; no job skipped as misfired)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    late: list[float] = []
    lock = threading.Lock()

    def job() -> None:
        now = time.time()
        with lock:
            late.append((now - now // 60 * 60) * 1000)

    scheduler = BackgroundScheduler()
    scheduler.start()
    for _ in range(CRONS):
        scheduler.add_job(job, "cron", minute="*", misfire_grace_time=60)
    time.sleep(62 - time.time() % 60)
    scheduler.shutdown(wait=True)
    return late


def main() -> None:
    # nerve's cron minute first: the other measures then fill most of the minute before
    # APScheduler's (each needs a minute's start of its own, alone on the machine)
    cron_late = [] if QUICK else anyio.run(nerve_cron_lateness)
    nerve = anyio.run(nerve_timers)
    peer = apscheduler_timers()
    idle, late = nerve["idle"], nerve["late"]
    p99 = percentile(late, 99)
    rows = [
        (
            "idle CPU, % of a core",
            f"{idle * 100:.3f}",
            f"{peer['idle'] * 100:.3f} APScheduler 3" if peer else "APScheduler 3 not installed",
            f"{idle / peer['idle']:.1f}" if peer and peer["idle"] >= 0.0001 else "-",
            "<= 1",
            "yes" if idle <= 0.01 else "NO",
        ),
        (
            f"delayed fire lateness p50 / p99, ms ({len(late)})",
            f"{percentile(late, 50):.2f} / {p99:.2f}",
            f"{percentile(peer['late'], 50):.2f} / {percentile(peer['late'], 99):.2f} APScheduler 3"
            if peer and peer["late"]
            else "-",
            f"{p99 / percentile(peer['late'], 99):.2f}" if peer and peer["late"] else "-",
            "<= 10",
            "yes" if p99 <= 10 else "NO",
        ),
        (
            "delayed triggers committed per second",
            f"{nerve['added_per_s']:.0f}",
            "-",
            "-",
            "-",
            "-",
        ),
    ]
    if cron_late:
        cron99 = percentile(cron_late, 99)
        peer_cron = peer["cron_late"] if peer else []
        rows.append(
            (
                f"cron fire lateness p50 / p99, ms ({len(cron_late)} at one instant)",
                f"{percentile(cron_late, 50):.2f} / {cron99:.2f}",
                f"{percentile(peer_cron, 50):.2f} / {percentile(peer_cron, 99):.2f} APScheduler 3"
                if peer_cron
                else "-",
                f"{cron99 / percentile(peer_cron, 99):.2f}" if peer_cron else "-",
                "<= 10",
                "yes" if cron99 <= 10 else "NO",
            )
        )
    print_table(f"timers: {PENDING:,} pending delayed triggers and {CRONS:,} cron reflexes", rows)


if __name__ == "__main__":
    main()
