"""logs.db growth: bytes per compute at 500 senses @1 s against the same signal rows appended bare
(what a compute cost before lineage and the decision ledger), bytes per workflow round, logs.db
per day for the example workspace (its senses on their intervals), and the ledger's own rows when
triggers merge on every signal.

    .venv/bin/python bench/log_growth.py [--quick]

Goals: bytes per compute <= 1.2 x the bare rows; decision rows <= one per sense every 10 s however
many triggers merge.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _common import embedded_kernel, interval_config, print_table

QUICK = "--quick" in sys.argv
SECONDS = 2.0 if QUICK else 15.0
SENSES, GROUPS = 500, 20
MERGING = 50  # senses throttled to one compute per 10 s, on a source signalling 10 times a second


def used_bytes(db: Path) -> int:
    """Bytes logs.db holds once its WAL is checkpointed: pages in use, free pages left out."""
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (
            raw.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
    return int((pages - free) * size)


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as raw:
        return int(raw.execute(sql).fetchone()[0])


async def nerve_interval() -> dict[str, float]:
    config = interval_config(SENSES, GROUPS, "1s")
    code = {f"s{n}": "def compute(ctx):\n    return {'v': 1}\n" for n in range(SENSES)}
    async with embedded_kernel(config, code) as kernel:
        db = kernel.workspace.logs_db  # type: ignore[attr-defined]
        await anyio.sleep(2.0)  # warm up
        before_bytes, before_rows = used_bytes(db), count(db, "SELECT count(*) FROM logs")
        before_signals = count(db, "SELECT count(*) FROM logs WHERE type = 'signal'")
        await anyio.sleep(SECONDS)
        grown = used_bytes(db) - before_bytes
        rows = count(db, "SELECT count(*) FROM logs") - before_rows
        computes = count(db, "SELECT count(*) FROM logs WHERE type = 'signal'") - before_signals
        decisions = count(db, "SELECT count(*) FROM logs WHERE type = 'sense.decision'")
    return {"bytes": grown, "rows": rows, "computes": computes, "decisions": decisions}


def bare_rows(computes: int) -> float:
    """The same signal rows (source, payload, a signal id and a cause like the kernel's), appended
    straight through LogStore into a fresh logs.db: bytes per row."""
    from nerve_core import LogType
    from nerve_store import LogRow, LogStore

    with tempfile.TemporaryDirectory(prefix="nerve-bench-") as folder:
        db = Path(folder) / "logs.db"
        with LogStore.open(db) as store:
            start = used_bytes(db)
            batch = [
                LogRow(
                    f"s{n % SENSES}",
                    LogType.SIGNAL,
                    {"v": 1},
                    ref_id=f"19a2b3c4d5e-{n:x}",
                    ts=1_796_000_000_000 + n,
                    cause=f"t-19a2b3c4d5e-{n:x}",
                )
                for n in range(computes)
            ]
            for index in range(0, len(batch), 500):
                store.append(*batch[index : index + 500])
            return (used_bytes(db) - start) / computes


async def nerve_merging() -> dict[str, float]:
    lines = ["senses:", "  src: {}"]
    lines += [f"  m{n}: {{group: g{n % 5}, throttle: 10s}}" for n in range(MERGING)]
    lines += ["reflexes:", "  - sense: src", "    interval: 100ms"]
    lines += [f"  - sense: m{n}\n    on: [src]" for n in range(MERGING)]
    code = {"src": "def compute(ctx):\n    return 1\n"}
    code |= {f"m{n}": "def compute(ctx):\n    return None\n" for n in range(MERGING)}
    async with embedded_kernel("\n".join(lines) + "\n", code) as kernel:
        await anyio.sleep(1.0)
        began = time.monotonic()
        merged_before = sum(
            kernel.ledger.counts(f"m{n}").get("merged", 0)  # type: ignore[attr-defined]
            for n in range(MERGING)
        )
        db = kernel.workspace.logs_db  # type: ignore[attr-defined]
        rows_before = count(db, "SELECT count(*) FROM logs WHERE type = 'sense.decision'")
        await anyio.sleep(SECONDS)
        elapsed = time.monotonic() - began
        merged = (
            sum(
                kernel.ledger.counts(f"m{n}").get("merged", 0)  # type: ignore[attr-defined]
                for n in range(MERGING)
            )
            - merged_before
        )
        rows = count(db, "SELECT count(*) FROM logs WHERE type = 'sense.decision'") - rows_before
    return {"merged_per_s": merged / elapsed, "rows_per_s": rows / elapsed}


REPO = Path(__file__).resolve().parents[1]
ROUNDS = 200
PING_PONG = """
from nerve_core.workflow import END, START, WorkflowDefinition


def moderator(thread):
    return END if len(thread) > ROUNDS else ("ping" if thread[-1].role != "ping" else "pong")


def ping(ctx):
    return "ping"


def pong(ctx):
    return "pong"


definition = WorkflowDefinition(moderator=moderator, roles={"ping": ping, "pong": pong})
""".replace("ROUNDS", str(ROUNDS))


async def bytes_per_round() -> float:
    """One run of `ROUNDS` rounds, each a short message: logs.db's growth by round."""
    from nerve_core import RunStatus
    from nerve_store import LogStore

    def write_workflow(root: Path) -> None:
        (root / "workflows/pingpong").mkdir(parents=True)
        (root / "workflows/pingpong/workflow.py").write_text(PING_PONG)

    config = f"max_rounds: {ROUNDS + 10}\nworkflows:\n  pingpong: {{}}\n"
    async with embedded_kernel(config, {}, before_start=write_workflow) as kernel:
        db = kernel.workspace.logs_db  # type: ignore[attr-defined]
        before = used_bytes(db)
        run_id, _ = await kernel.trigger_workflow("pingpong")  # type: ignore[attr-defined]
        store = LogStore.open_readonly(db)
        while (run := store.run(run_id)) is None or not run.status.terminal:
            await anyio.sleep(0.05)
        assert run.status is RunStatus.COMPLETED, run
        rounds = run.rounds
        store.close()
        return (used_bytes(db) - before) / max(1, rounds)


async def example_per_day() -> float:
    """The example workspace (`make run`'s) for `SECONDS`: logs.db's growth, as bytes a day."""
    with tempfile.TemporaryDirectory(prefix="nerve-bench-") as folder:
        root = Path(folder)
        shutil.copy(REPO / "nerve.yaml.example", root / "nerve.yaml")
        shutil.copytree(REPO / "senses", root / "senses")
        shutil.copytree(REPO / "workflows", root / "workflows")
        from nerve_core import load_nerve_config
        from nerve_daemon.kernel import Kernel

        kernel = Kernel(load_nerve_config(root / "nerve.yaml"), root)
        async with anyio.create_task_group() as group:
            await group.start(kernel.run)
            db = kernel.workspace.logs_db
            await anyio.sleep(3.0)  # past start-up and the first computes
            before, began = count(db, "SELECT count(*) FROM logs"), time.monotonic()
            await anyio.sleep(SECONDS / 2)  # a rate: half the time does
            rows = count(db, "SELECT count(*) FROM logs") - before
            elapsed = time.monotonic() - began
            kernel.stop()
        # Too few rows in a few seconds to fill pages: rows a day times the bytes a row takes.
        with contextlib.closing(sqlite3.connect(db)) as raw:
            stored = raw.execute("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'logs%'")
            per_row = stored.fetchone()[0] / raw.execute("SELECT count(*) FROM logs").fetchone()[0]
    return rows / elapsed * 86_400 * per_row


def main() -> None:
    interval = anyio.run(nerve_interval)
    per_round = anyio.run(bytes_per_round)
    example = anyio.run(example_per_day)
    per_compute = interval["bytes"] / max(1, interval["computes"])
    bare = bare_rows(int(interval["computes"]))
    merging = anyio.run(nerve_merging)
    ratio = per_compute / bare
    bound = MERGING / 10  # one row per sense every 10 s
    rows = [
        (
            f"bytes per compute, {SENSES} senses @1 s (rows/compute {interval['rows'] / max(1, interval['computes']):.2f})",
            f"{per_compute:.0f} B",
            f"{bare:.0f} B bare",
            f"{ratio:.2f}",
            "<= 1.2",
            "yes" if ratio <= 1.2 else "NO",
        ),
        (
            f"logs.db growth, {SENSES} senses @1 s",
            f"{per_compute * SENSES * 86_400 / 1e9:.1f} GB/day",
            "-",
            "-",
            "-",
            "-",
        ),
        (
            f"bytes per workflow round (one run of {ROUNDS})",
            f"{per_round:.0f} B",
            "-",
            "-",
            "-",
            "-",
        ),
        (
            "logs.db growth, the example workspace",
            f"{example / 1e6:.1f} MB/day",
            "-",
            "-",
            "-",
            "-",
        ),
        (
            f"decision rows, {MERGING} senses merging {merging['merged_per_s']:.0f} triggers/s",
            f"{merging['rows_per_s']:.1f} rows/s",
            f"{bound:.1f} rows/s bound",
            f"{merging['rows_per_s'] / bound:.2f}",
            "<= 1.0",
            "yes" if merging["rows_per_s"] <= bound * 1.05 else "NO",
        ),
    ]
    print_table(f"log growth ({SECONDS:g} s each)", rows)


if __name__ == "__main__":
    main()
