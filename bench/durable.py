"""Durable one-step work, nerve against its peers in the same run: `COUNT` trivial tasks handed to
each, every hand-over committed before it is acknowledged, then run by the same number of
workers; the rate from the first hand-over to the last result, and each task's latency from its
hand-over to its run (p50, p99).

- nerve: a one-round workflow (`concurrency: 4`, queued beyond), launched over the daemon's socket
  by `trigger-workflow` one after another (each answered once committed), at `synchronous:
  normal` and `full`;
- huey 3 with `SqliteHuey` (WAL), its consumer a process with 4 threads, `fsync` off (SQLite's
  NORMAL) and on (FULL): the matched durability;
- APScheduler 4 with its SQLAlchemy data store on SQLite (aiosqlite), jobs run in-process (a
  quarter as many tasks: at ~55 a second, the full count alone would take a minute a round).

The peers run in interpreters of their own, from `.venv/peers` (`make bench` installs them there:
APScheduler 4 cannot share a venv with the APScheduler 3 other benches use). Rounds alternate
nerve and the peers, so drift hits each alike; medians of the rounds are shown.

    .venv/bin/python bench/durable.py [--quick]

Goal: nerve >= 1.0 x huey at matched durability.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentile, print_table, run_peer, write_workspace

QUICK = "--quick" in sys.argv
COUNT = 300 if QUICK else 2_000
ROUNDS = 1 if QUICK else 2
WORKERS = 4
BENCH = Path(__file__).parent
NERVE = str(Path(sys.executable).parent / "nerve")
WORKFLOW = """
import time

from nerve_core.workflow import END, START, WorkflowDefinition


def moderator(thread):
    return "work" if thread[-1].role == START else END


def work(ctx):
    return str((time.time() - float(ctx.prompt)) * 1000)


definition = WorkflowDefinition(moderator=moderator, roles={"work": work})
"""


def nerve(synchronous: str) -> tuple[float, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="nv-bench-", dir="/tmp"))
    config = (
        f"workflows:\n  one: {{concurrency: {WORKERS}, overflow: queue, max_queue: 100000}}\n"
        f"store:\n  synchronous: {synchronous}\n"
    )
    root = write_workspace(folder / "ws", config, {})
    (root / "workflows/one").mkdir(parents=True)
    (root / "workflows/one/workflow.py").write_text(WORKFLOW)
    subprocess.run([NERVE, "start", "--root", str(root)], check=True, stdout=subprocess.DEVNULL)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(root / "nerve.sock"))
            answers = sock.makefile("rb")
            began = time.time()
            for _ in range(COUNT):
                request = {
                    "type": "trigger-workflow",
                    "workflow": "one",
                    "prompt": str(time.time()),
                }
                sock.sendall(json.dumps(request).encode() + b"\n")
                assert json.loads(answers.readline())["ok"]
        done_sql = "SELECT count(*) FROM workflow_runs WHERE status = 'completed'"
        uri = f"file:{root / 'data/logs.db'}?mode=ro"
        while True:
            with sqlite3.connect(uri, uri=True) as db:
                if db.execute(done_sql).fetchone()[0] >= COUNT:
                    seconds = time.time() - began
                    latencies = [
                        float(content)
                        for (content,) in db.execute(
                            "SELECT json_extract(payload, '$.content') FROM logs"
                            " WHERE type = 'workflow.message'"
                            " AND json_extract(payload, '$.role') = 'work'"
                        )
                    ]
                    break
            time.sleep(0.01)
    finally:
        subprocess.run([NERVE, "stop", "--root", str(root)], check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(folder)
    return seconds, latencies


def peer(script: str, *args: str) -> tuple[float, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="nv-bench-", dir="/tmp"))
    try:
        result = run_peer(script, str(folder), *args)
    finally:
        shutil.rmtree(folder)
    return float(result["seconds"]), [float(value) for value in result["latencies_ms"]]


def main() -> None:
    contenders = {
        "nerve, normal": lambda: nerve("normal"),
        "nerve, full": lambda: nerve("full"),
        "huey, fsync off": lambda: peer("huey_durable.py", str(COUNT), str(WORKERS), "0"),
        "huey, fsync on": lambda: peer("huey_durable.py", str(COUNT), str(WORKERS), "1"),
        "APScheduler 4": lambda: peer("aps4_durable.py", str(COUNT // 4)),  # ~55/s: a quarter
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    latencies: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, measure in contenders.items():
            seconds, each = measure()
            rates[name].append(len(each) / seconds)
            latencies[name].extend(each)
    rate = {name: statistics.median(values) for name, values in rates.items()}
    rows = []
    for ours, theirs in (("nerve, normal", "huey, fsync off"), ("nerve, full", "huey, fsync on")):
        ratio = rate[ours] / rate[theirs]
        rows.append(
            (
                f"tasks/s, {ours} (huey {theirs.removeprefix('huey, ')})",
                f"{rate[ours]:,.0f}",
                f"{rate[theirs]:,.0f} huey",
                f"{ratio:.2f}",
                ">= 1.0 x",
                "yes" if ratio >= 1.0 else "NO",
            )
        )
    aps = rate["APScheduler 4"]
    rows.append(
        (
            "tasks/s, nerve normal against APScheduler 4 (SQLite)",
            f"{rate['nerve, normal']:,.0f}",
            f"{aps:,.0f} APScheduler 4",
            f"{rate['nerve, normal'] / aps:.2f}",
            "-",
            "-",
        )
    )
    for name in contenders:
        p50, p99 = percentile(latencies[name], 50), percentile(latencies[name], 99)
        rows.append((f"latency p50 / p99 ms, {name}", f"{p50:.1f} / {p99:.1f}", "-", "-", "-", "-"))
    print_table(
        f"durable one-step tasks: {COUNT:,} handed over then run by {WORKERS} workers "
        f"(median of {ROUNDS} rounds; latency from hand-over to run, under that backlog)",
        rows,
    )


if __name__ == "__main__":
    main()
