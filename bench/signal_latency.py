"""Signal latency: from a compute's return in its worker to the start of the compute it triggers
through an `on` reflex in another group, against a raw pipe ping-pong between two Python
processes in the same run.

    .venv/bin/python bench/signal_latency.py [--quick]

Goal: p50 <= 1 ms, p99 <= 5 ms.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _common import embedded_kernel, median, percentile, print_table

QUICK = "--quick" in sys.argv
SAMPLES = 200 if QUICK else 1000

CONFIG = """
senses:
  source: {group: one}
  follower: {group: two}
reflexes:
  - sense: follower
    on: [source]
"""
SENSES = {
    "source": "import time\ndef compute(ctx):\n    return {'t': time.monotonic()}\n",
    "follower": "import time\ndef compute(ctx):\n    return (time.monotonic() - ctx.signal.payload['t']) * 1000\n",
}


async def nerve_latencies() -> list[float]:
    latencies: list[float] = []
    done = anyio.Event()

    def on_compute(sense: str, trigger: object, outcome: object) -> None:
        nonlocal done
        if sense == "follower":
            latencies.append(outcome.result.value)  # type: ignore[attr-defined]
            done.set()

    async with embedded_kernel(CONFIG, SENSES, on_compute=on_compute) as kernel:
        for _ in range(SAMPLES + 20):
            done = anyio.Event()
            kernel.trigger_sense("source")  # type: ignore[attr-defined]
            with anyio.fail_after(10):
                await done.wait()
    return latencies[20:]  # the first ones warm the path


def _echo(read_fd: int, write_fd: int, unused: tuple[int, int]) -> None:
    for fd in unused:  # the parent's ends: holding them would keep our reader from seeing EOF
        os.close(fd)
    with (
        os.fdopen(read_fd, "rb", buffering=0) as reader,
        os.fdopen(write_fd, "wb", buffering=0) as writer,
    ):
        while data := reader.read(64):
            writer.write(data)


def pipe_latencies() -> list[float]:
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_echo, args=(to_child_r, to_parent_w, (to_child_w, to_parent_r))
    )
    child.start()
    os.close(to_child_r)
    os.close(to_parent_w)
    latencies = []
    for _ in range(SAMPLES + 20):
        sent = time.perf_counter()
        os.write(to_child_w, b'{"t": 1}\n')
        os.read(to_parent_r, 64)
        latencies.append((time.perf_counter() - sent) * 1000 / 2)  # one way
    os.close(to_child_w)
    child.join()
    os.close(to_parent_r)
    return latencies[20:]


def main() -> None:
    nerve = anyio.run(nerve_latencies)
    raw = pipe_latencies()
    p50, p99 = percentile(nerve, 50), percentile(nerve, 99)
    print_table(
        "signal latency, sense return → `on` compute start in another group (ms)",
        [
            (
                "p50",
                f"{p50:.3f}",
                f"{median(raw):.3f} one-way pipe",
                f"{p50 / median(raw):.1f}",
                "<= 1",
                "yes" if p50 <= 1 else "NO",
            ),
            (
                "p99",
                f"{p99:.3f}",
                f"{percentile(raw, 99):.3f} one-way pipe",
                f"{p99 / percentile(raw, 99):.1f}",
                "<= 5",
                "yes" if p99 <= 5 else "NO",
            ),
        ],
    )


if __name__ == "__main__":
    main()
