"""Workflow rounds per second (two trivial roles, every message committed before the next
round), for one run and over 20 concurrent runs, against the raw per-row commit rate of SQLite
on the same schema in the same run and against the floor of one run's round (a raw commit plus a
raw round trip to a child process, bench/compute_throughput.py's baseline, one after the other);
and the launch latency from a sense's return to its run's first role starting.

    .venv/bin/python bench/workflow_rounds.py [--quick]

Goals: >= 1,000 rounds/s for one run and >= 0.15 x its floor, >= 3,000 over 20 runs; launch
latency p50 <= 5 ms.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _common import embedded_kernel, median, percentile, print_table
from compute_throughput import raw_rate

from nerve_core import RunStatus
from nerve_store import LogStore

QUICK = "--quick" in sys.argv
ROUNDS = 300 if QUICK else 1000
LAUNCHES = 30 if QUICK else 100

PING_PONG = f"""
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    if len(thread) > {ROUNDS}:
        return END
    return "ping" if thread[-1].role in (START, "pong") else "pong"

def ping(ctx):
    return len(ctx.thread)

def pong(ctx):
    return len(ctx.thread)

definition = WorkflowDefinition(moderator=moderator, roles={{"ping": ping, "pong": pong}})
"""
STAMP = """
import time
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "measure" if thread[-1].role == START else END

def measure(ctx):
    return (time.monotonic() - float(ctx.prompt)) * 1000

definition = WorkflowDefinition(moderator=moderator, roles={"measure": measure})
"""
CONFIG = f"""
max_rounds: {ROUNDS + 10}
senses:
  launcher: {{}}
workflows:
  pingpong: {{concurrency: 20, overflow: queue, max_queue: 100}}
  stamp: {{concurrency: 4, overflow: queue, max_queue: 1000}}
"""
SENSES = {
    "launcher": "import time\ndef compute(ctx):\n    return {'workflow': f'stamp|2|{time.monotonic()}'}\n"
}


def write_workflows(root: Path) -> None:
    for name, code in (("pingpong", PING_PONG), ("stamp", STAMP)):
        (root / "workflows" / name).mkdir(parents=True)
        (root / "workflows" / name / "workflow.py").write_text(code)


async def rounds_per_second(runs: int) -> float:
    async with embedded_kernel(CONFIG, SENSES, before_start=write_workflows) as kernel:
        store = LogStore.open_readonly(kernel.workspace.logs_db)  # type: ignore[attr-defined]
        started = time.perf_counter()
        ids = [(await kernel.trigger_workflow("pingpong"))[0] for _ in range(runs)]  # type: ignore[attr-defined]

        def all_completed() -> bool:
            return all(
                (run := store.run(run_id)) is not None and run.status is RunStatus.COMPLETED
                for run_id in ids
            )

        # Polled from a thread: reading logs.db on the loop would steal the kernel's time.
        while not await anyio.to_thread.run_sync(all_completed):
            await anyio.sleep(0.005)
        elapsed = time.perf_counter() - started
        store.close()
    return runs * ROUNDS / elapsed


async def launch_latencies() -> list[float]:
    async with embedded_kernel(CONFIG, SENSES, before_start=write_workflows) as kernel:
        store = LogStore.open_readonly(kernel.workspace.logs_db)  # type: ignore[attr-defined]
        for _ in range(LAUNCHES):
            kernel.trigger_sense("launcher")  # type: ignore[attr-defined]
            await anyio.sleep(0.02)
        latencies: list[float] = []
        deadline = time.monotonic() + 60
        while len(latencies) < LAUNCHES and time.monotonic() < deadline:
            runs = [
                r
                for r in store.runs(workflow="stamp", limit=1000)
                if r.status is RunStatus.COMPLETED
            ]
            latencies = [store.messages(r.run_id)[1].content for r in runs]
            await anyio.sleep(0.05)
        store.close()
    return latencies


def raw_commits_per_second() -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "raw.db"
        LogStore.open(path).close()  # the same schema
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < 2.0:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "INSERT INTO logs (ts, source, type, ref_id, payload) VALUES (?, 'w', 'workflow.message', 'r', ?)",
                (count, '{"round": 1, "role": "ping", "content": 1}'),
            )
            connection.execute("COMMIT")
            count += 1
        connection.close()
        return count / (time.perf_counter() - started)


def main() -> None:
    one = anyio.run(rounds_per_second, 1)
    twenty = anyio.run(rounds_per_second, 20)
    raw = raw_commits_per_second()
    floor = 1 / (1 / raw + 1 / raw_rate())  # a round: its commit, then the worker's next turn
    latencies = anyio.run(launch_latencies)
    p50 = median(latencies) if latencies else float("nan")
    print_table(
        "workflow rounds (each message committed before the next round)",
        [
            (
                "rounds/s, one run",
                f"{one:,.0f}",
                f"{raw:,.0f} raw commits/s",
                f"{one / raw:.2f}",
                ">= 1,000",
                "yes" if one >= 1000 else "NO",
            ),
            (
                "rounds/s, one run, against its floor (a raw commit + a raw round trip)",
                f"{one:,.0f}",
                f"{floor:,.0f} floor",
                f"{one / floor:.2f}",
                ">= 0.15 x",
                "yes" if one / floor >= 0.15 else "NO",
            ),
            (
                "rounds/s, 20 runs",
                f"{twenty:,.0f}",
                f"{raw:,.0f} raw commits/s",
                f"{twenty / raw:.2f}",
                ">= 3,000",
                "yes" if twenty >= 3000 else "NO",
            ),
            (
                "launch latency p50 / p99 ms",
                f"{p50:.2f} / {percentile(latencies, 99):.2f}",
                "-",
                "-",
                "p50 <= 5",
                "yes" if p50 <= 5 else "NO",
            ),
        ],
    )


if __name__ == "__main__":
    main()
