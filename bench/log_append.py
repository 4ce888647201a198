"""Log append throughput and ack latency of LogStore's batching writer (commit before ack),
against raw sqlite3 `executemany` batches on the same schema, in the same run.

    .venv/bin/python bench/log_append.py [--quick]

Figures:
- rows/s through `LogWriter` (ops of 100 rows, every op acknowledged after its commit), and the
  ratio to raw sqlite3 batches of the same rows (goal: >= 150,000 rows/s and >= 0.5 of raw);
- rows/s when every row is its own acknowledged op (group commit merges them);
- p50/p99 ack latency of a single append under a concurrent stream of 10,000 rows/s (goal: p99
  <= 10 ms).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, percentile, print_table

from nerve_core import LogType
from nerve_store import AppendLogs, LogRow, LogStore, LogWriter

QUICK = "--quick" in sys.argv
ROWS = 50_000 if QUICK else 200_000
ROUNDS = 3 if QUICK else 5
OP_ROWS = 100


def make_rows(count: int) -> list[LogRow]:
    return [
        LogRow(
            "cpu-usage", LogType.SIGNAL, {"percent": n * 0.1, "cores": 2}, ts=1_700_000_000_000 + n
        )
        for n in range(count)
    ]


def nerve_rate(folder: Path, rows: list[LogRow], rows_per_op: int) -> float:
    """Rows/s through the writer, `rows_per_op` rows an acknowledged op."""
    store = LogStore.open(folder / "nerve.db")
    writer = LogWriter(store)
    writer.start()
    started = time.perf_counter()
    futures = [
        writer.submit(AppendLogs(rows[i : i + rows_per_op]))
        for i in range(0, len(rows), rows_per_op)
    ]
    for future in futures:
        future.result()
    elapsed = time.perf_counter() - started
    writer.close()
    store.close()
    return len(rows) / elapsed


def raw_batched(folder: Path, rows: list[LogRow]) -> float:
    path = folder / "raw.db"
    store = LogStore.open(path)  # the same schema, indexes included
    store.close()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    sql = "INSERT INTO logs (ts, source, type, ref_id, payload) VALUES (?, ?, ?, ?, ?)"
    batch = len(rows) // 20  # about what the writer commits at once under this load
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        connection.execute("BEGIN")
        connection.executemany(
            sql,
            [
                (r.ts, r.source, str(r.type), r.ref_id, orjson.dumps(r.payload).decode())
                for r in rows[i : i + batch]
            ],
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return len(rows) / elapsed


def ack_latency_under_load(folder: Path, seconds: float) -> tuple[float, float]:
    store = LogStore.open(folder / "latency.db")
    writer = LogWriter(store)
    writer.start()
    stop = threading.Event()

    def stream() -> None:  # 10,000 rows/s in ticks of 1 ms
        tick = 0
        started = time.perf_counter()
        while not stop.is_set():
            writer.submit(AppendLogs(make_rows(10)))
            tick += 1
            delay = started + tick * 0.001 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    background = threading.Thread(target=stream)
    background.start()
    latencies = []
    deadline = time.perf_counter() + seconds
    row = make_rows(1)[0]
    while time.perf_counter() < deadline:
        sent = time.perf_counter()
        writer.append(row).result()
        latencies.append((time.perf_counter() - sent) * 1000)
        time.sleep(0.002)
    stop.set()
    background.join()
    writer.close()
    store.close()
    return percentile(latencies, 50), percentile(latencies, 99)


def main() -> None:
    rows = make_rows(ROWS)
    batched, raw, single = [], [], []
    for _ in range(ROUNDS):  # alternate, so drift on a noisy machine hits both sides
        with tempfile.TemporaryDirectory() as folder:
            batched.append(nerve_rate(Path(folder), rows, OP_ROWS))
        with tempfile.TemporaryDirectory() as folder:
            raw.append(raw_batched(Path(folder), rows))
        with tempfile.TemporaryDirectory() as folder:
            single.append(nerve_rate(Path(folder), rows[: ROWS // 4], 1))
    with tempfile.TemporaryDirectory() as folder:
        p50, p99 = ack_latency_under_load(Path(folder), 2 if QUICK else 5)
    ratio = median(batched) / median(raw)
    print_table(
        "log append",
        [
            (
                "append rows/s (ops of 100 rows)",
                f"{median(batched):,.0f}",
                f"{median(raw):,.0f} raw sqlite3",
                f"{ratio:.2f}",
                ">= 150,000 and >= 0.5",
                "yes" if median(batched) >= 150_000 and ratio >= 0.5 else "NO",
            ),
            (
                "append rows/s (one row an op)",
                f"{median(single):,.0f}",
                f"{median(raw):,.0f} raw sqlite3",
                f"{median(single) / median(raw):.2f}",
                "-",
                "-",
            ),
            (
                "single append ack p50 / p99 ms at 10k rows/s",
                f"{p50:.2f} / {p99:.2f}",
                "-",
                "-",
                "p99 <= 10",
                "yes" if p99 <= 10 else "NO",
            ),
        ],
    )


if __name__ == "__main__":
    main()
