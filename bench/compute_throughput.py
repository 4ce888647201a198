"""Computes per second through one group worker, every result logged, against raw pipe round
trips of the same JSON between two Python processes in the same run.

    .venv/bin/python bench/compute_throughput.py [--quick]

Goal: >= 3,000 computes/s and >= 0.3 of the raw round-trip rate.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path

import anyio
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import embedded_kernel, median, print_table

QUICK = "--quick" in sys.argv
SECONDS = 2.0 if QUICK else 5.0
ROUNDS = 1 if QUICK else 3

CONFIG = "senses:\n  trivial: {}\n"
SENSES = {"trivial": "def compute(ctx):\n    return {'ok': True}\n"}


async def nerve_rate() -> float:
    count = 0
    kernel_ref: list[object] = []

    def on_compute(sense: str, trigger: object, outcome: object) -> None:
        nonlocal count
        count += 1
        kernel_ref[0].trigger_sense("trivial")  # type: ignore[attr-defined]  # keep one pending

    async with embedded_kernel(CONFIG, SENSES, on_compute=on_compute) as kernel:
        kernel_ref.append(kernel)
        kernel.trigger_sense("trivial")  # type: ignore[attr-defined]
        await anyio.sleep(0.5)  # warm up
        start_count, started = count, time.perf_counter()
        await anyio.sleep(SECONDS)
        return (count - start_count) / (time.perf_counter() - started)


def _echo(connection: multiprocessing.connection.Connection) -> None:
    while True:
        data = connection.recv_bytes()
        if not data:
            return
        message = orjson.loads(data)
        connection.send_bytes(
            orjson.dumps({"id": message["id"], "ok": True, "value": {"ok": True}})
        )


def raw_rate() -> float:
    parent, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_echo, args=(child_end,))
    child.start()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        parent.send_bytes(orjson.dumps({"t": "compute", "id": count, "sense": "trivial"}))
        orjson.loads(parent.recv_bytes())
        count += 1
    rate = count / (time.perf_counter() - started)
    parent.send_bytes(b"")
    child.join()
    return rate


def main() -> None:
    nerve, raw = [], []
    for _ in range(ROUNDS):
        nerve.append(anyio.run(nerve_rate))
        raw.append(raw_rate())
    ratio = median(nerve) / median(raw)
    holds = median(nerve) >= 3000 and ratio >= 0.3
    print_table(
        "compute throughput, one group worker, every result logged",
        [
            (
                "computes/s",
                f"{median(nerve):,.0f}",
                f"{median(raw):,.0f} raw round trips/s",
                f"{ratio:.2f}",
                ">= 3,000 and >= 0.3",
                "yes" if holds else "NO",
            )
        ],
    )


if __name__ == "__main__":
    main()
