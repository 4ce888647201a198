"""Worker respawn: SIGKILL a group worker, time until its next compute starts, against a fresh
interpreter's start (importing the same libraries) in the same run.

    .venv/bin/python bench/respawn.py [--quick]

Goal: <= 100 ms.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

from nerve_daemon.supervise.policy import GroupPolicy

sys.path.insert(0, str(Path(__file__).parent))
from _common import embedded_kernel, median, print_table

QUICK = "--quick" in sys.argv
KILLS = 5 if QUICK else 20

CONFIG = "senses:\n  pulse: {}\nreflexes:\n  - sense: pulse\n    interval: 5ms\n"
SENSES = {"pulse": "def compute(ctx):\n    return None\n"}


async def respawn_times() -> list[float]:
    starts: list[float] = []

    def on_compute(sense: str, trigger: object, outcome: object) -> None:
        result = outcome.result  # type: ignore[attr-defined]
        if result is not None:
            starts.append(result.started_mono)

    times = []
    # Each kill here is a first crash (a short crash window), which respawns without backoff.
    policy = GroupPolicy(crash_window_s=0.05)
    async with embedded_kernel(
        CONFIG, SENSES, on_compute=on_compute, group_policy=policy
    ) as kernel:
        group = kernel.groups["default"]  # type: ignore[attr-defined]
        for _ in range(KILLS):
            await anyio.sleep(0.2)
            killed_at = time.monotonic()
            os.kill(group.worker.pid, signal.SIGKILL)
            with anyio.fail_after(10):
                while not starts or starts[-1] < killed_at:
                    await anyio.sleep(0.001)
            times.append((starts[-1] - killed_at) * 1000)
    return times


def fresh_interpreter_ms() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import orjson, sqlalchemy, anyio, nerve_store"], check=True
    )
    return (time.perf_counter() - started) * 1000


def main() -> None:
    nerve = anyio.run(respawn_times)
    fresh = [fresh_interpreter_ms() for _ in range(5 if QUICK else 10)]
    value = median(nerve)
    print_table(
        "worker respawn after SIGKILL → next compute start (ms)",
        [
            (
                "median",
                f"{value:.1f}",
                f"{median(fresh):.1f} fresh interpreter",
                f"{value / median(fresh):.2f}",
                "<= 100",
                "yes" if value <= 100 else "NO",
            ),
            ("max", f"{max(nerve):.1f}", "-", "-", "-", "-"),
        ],
    )


if __name__ == "__main__":
    main()
