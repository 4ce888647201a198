"""APScheduler 4's side of bench/timer_jitter.py: `jobs` interval schedules at 100 ms in one
AsyncScheduler (its memory data store, jobs run in-process), every `interval` seconds (0.1 unless
given), for `seconds` after a warm-up; prints one JSON line: each run's lateness (ms) from its
scheduled fire time to its start.

    python bench/peers/aps4_lateness.py JOBS SECONDS [INTERVAL]
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import anyio

lateness: list[float] = []


def job() -> None:
    from apscheduler import current_job

    fire = current_job.get().scheduled_fire_time
    if fire is not None:
        lateness.append((datetime.now(UTC) - fire).total_seconds() * 1000)


async def measure(jobs: int, seconds: float, interval: float) -> list[float]:
    from apscheduler import AsyncScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    async with AsyncScheduler() as scheduler:
        for _ in range(jobs):
            await scheduler.add_schedule(job, IntervalTrigger(seconds=interval))
        await scheduler.start_in_background()
        await anyio.sleep(1.0 + interval)  # warm up
        lateness.clear()
        await anyio.sleep(seconds)
        measured = list(lateness)
        await scheduler.stop()
    return measured


def main() -> None:
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
    lateness_ms = anyio.run(measure, int(sys.argv[1]), float(sys.argv[2]), interval)
    print(json.dumps({"lateness_ms": lateness_ms}))


if __name__ == "__main__":
    main()
