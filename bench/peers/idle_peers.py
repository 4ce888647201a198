"""The peers' side of bench/idle.py: the memory (USS, MB) of a peer idling with three periodic
jobs, as the example workspace idles with its senses; prints one JSON line.

    python bench/peers/idle_peers.py huey FOLDER SECONDS   # a SqliteHuey consumer, one worker
    python bench/peers/idle_peers.py aps4 FOLDER SECONDS   # an AsyncScheduler, 1 s intervals
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

TASKS = """
from huey import SqliteHuey, crontab

huey = SqliteHuey(filename={db!r})


@huey.periodic_task(crontab(minute="*"))
def first():
    return 1


@huey.periodic_task(crontab(minute="*"))
def second():
    return 2


@huey.periodic_task(crontab(minute="*"))
def third():
    return 3
"""


def uss_of(pid: int) -> float:
    process = psutil.Process(pid)
    family = [process, *process.children(recursive=True)]
    return sum(each.memory_full_info().uss for each in family) / 2**20


def huey(folder: Path, seconds: float) -> float:
    (folder / "tasks.py").write_text(TASKS.format(db=str(folder / "huey.db")))
    consumer = subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "tasks.huey", "-w", "1", "-q"],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(seconds)
        return uss_of(consumer.pid)
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)


def aps4(seconds: float) -> float:
    import anyio
    from apscheduler import AsyncScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    async def idle() -> float:
        async with AsyncScheduler() as scheduler:
            for _ in range(3):
                await scheduler.add_schedule(job, IntervalTrigger(seconds=1))
            await scheduler.start_in_background()
            await anyio.sleep(seconds)
            uss = uss_of(psutil.Process().pid)
            await scheduler.stop()
        return uss

    return anyio.run(idle)


def job() -> int:
    return 1


def main() -> None:
    which, folder, seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    uss = huey(folder, seconds) if which == "huey" else aps4(seconds)
    print(json.dumps({"uss_mb": uss}))


if __name__ == "__main__":
    main()
