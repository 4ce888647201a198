"""The scaling curves. Senses: 50, 200, 500, 1,000, 2,000 and 5,000 (50 and 500 in the quick pass)
at 1 s intervals, in 20 groups (50 at 5,000): for each, the kernel's CPU (and its CPU per compute),
compute lateness (tick → compute start in the worker) and the share started within 50 ms; then
the point where lateness p99 passes 50 ms. Workflows: one-round runs whose role waits 20 ms (a
call to something else), at concurrency 1, 5, 20 and 50 (1 and 20 in the quick pass), all launched at once: runs a second and
launch → role start latency. PNG plots of both go to bench/results/ (matplotlib, from the bench
extra).

    .venv/bin/python bench/scaling.py [--quick] [--senses N[,N…]]

Goal: 500 senses, >= 99 % started within 50 ms.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    embedded_kernel,
    interval_config,
    lateness_recorder,
    percentile,
    print_table,
    record,
)

QUICK = "--quick" in sys.argv
SECONDS = 2.0 if QUICK else 8.0
POINTS = (
    [int(n) for n in sys.argv[sys.argv.index("--senses") + 1].split(",")]
    if "--senses" in sys.argv
    else [50, 500]
    if QUICK
    else [50, 200, 500, 1000, 2000, 5000]
)
GROUPS = 20  # and one per 100 senses beyond 2,000
LATE_MS = 50.0
CONCURRENCY = [1, 20] if QUICK else [1, 5, 20, 50]
RUNS_EACH = 10 if QUICK else 20  # runs launched per slot
ROLE_WAIT_S = 0.02
WAITING_ROLE = f"""
import time

from nerve_core.workflow import END, START, WorkflowDefinition


def moderator(thread):
    return "wait" if thread[-1].role == START else END


def wait(ctx):
    started = (time.time() - float(ctx.prompt)) * 1000
    time.sleep({ROLE_WAIT_S})
    return str(started)


definition = WorkflowDefinition(moderator=moderator, roles={{"wait": wait}})
"""


async def measure(senses: int) -> dict[str, float]:
    lateness, on_compute = lateness_recorder()
    code = {f"s{n}": "def compute(ctx):\n    return None\n" for n in range(senses)}
    me = psutil.Process()
    groups = max(GROUPS, senses // 100)
    async with embedded_kernel(interval_config(senses, groups, "1s"), code, on_compute=on_compute):
        await anyio.sleep(2.0)  # warm up: every group's worker up and the grid running
        lateness.clear()
        cpu_before, wall_before = sum(me.cpu_times()[:2]), time.monotonic()
        await anyio.sleep(SECONDS)
        cpu = (sum(me.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before) * 100
        workers_rss = sum(c.memory_info().rss for c in me.children(recursive=True))
    within = sum(1 for value in lateness if value <= LATE_MS) / max(1, len(lateness)) * 100
    return {
        "senses": senses,
        "groups": groups,
        "computes": len(lateness),
        "cpu": cpu,
        "us_per_compute": cpu / 100 * SECONDS / max(1, len(lateness)) * 1e6,
        "p50": percentile(lateness, 50),
        "p99": percentile(lateness, 99),
        "within": within,
        "rss_mb": (me.memory_info().rss + workers_rss) / 2**20,
    }


async def measure_workflows(concurrency: int) -> dict[str, float]:
    """`RUNS_EACH` runs a slot, launched at once (as many clients would: their commits are
    shared), then run `concurrency` at a time: runs a second from the first launch to the last
    end, and each run's launch → role start latency (the queued ones' wait included)."""
    from nerve_store import LogStore

    config = (
        f"workflows:\n  w: {{concurrency: {concurrency}, overflow: queue, max_queue: 100000}}\n"
    )

    def write_workflow(root: Path) -> None:
        (root / "workflows/w").mkdir(parents=True)
        (root / "workflows/w/workflow.py").write_text(WAITING_ROLE)

    runs = RUNS_EACH * concurrency
    async with embedded_kernel(config, {}, before_start=write_workflow) as kernel:
        store = LogStore.open_readonly(kernel.workspace.logs_db)  # type: ignore[attr-defined]
        began = time.perf_counter()
        ids: list[str] = []

        async def launch() -> None:
            ids.append((await kernel.trigger_workflow("w", str(time.time())))[0])  # type: ignore[attr-defined]

        async with anyio.create_task_group() as launches:  # at once, as many clients would
            for _ in range(runs):
                launches.start_soon(launch)

        def completed() -> int:  # one count a look: the kernel shares this process's GIL
            uri = f"file:{kernel.workspace.logs_db}?mode=ro"  # type: ignore[attr-defined]
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                done = "SELECT count(*) FROM workflow_runs WHERE status = 'completed'"
                return int(db.execute(done).fetchone()[0])

        while await anyio.to_thread.run_sync(completed) < runs:
            await anyio.sleep(0.02)
        elapsed = time.perf_counter() - began
        latencies = [float(store.messages(run_id)[1].content) for run_id in ids]
        store.close()
    return {
        "concurrency": concurrency,
        "runs": runs,
        "runs_per_s": runs / elapsed,
        "ideal_per_s": concurrency / ROLE_WAIT_S,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


def crossing(points: list[dict[str, float]]) -> str:
    """Where lateness p99 passes 50 ms, interpolated between the two points around it."""
    for low, high in itertools.pairwise(points):
        if low["p99"] <= LATE_MS < high["p99"]:
            share = (LATE_MS - low["p99"]) / (high["p99"] - low["p99"])
            at = low["senses"] + share * (high["senses"] - low["senses"])
            return (
                f"about {at:,.0f} senses (between {low['senses']:,.0f} and {high['senses']:,.0f})"
            )
    if points and points[0]["p99"] > LATE_MS:
        return f"already at {points[0]['senses']:,.0f} senses"
    return f"not reached at {points[-1]['senses']:,.0f} senses" if points else "-"


def plot(points: list[dict[str, float]], flows: list[dict[str, float]]) -> list[str]:
    """bench/results/scaling.png (senses) and workflows.png (concurrency); none without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    folder = Path(__file__).parent / "results"
    folder.mkdir(exist_ok=True)
    figure, left = plt.subplots(figsize=(6, 3.5))
    senses = [p["senses"] for p in points]
    left.plot(senses, [p["p99"] for p in points], "o-", label="lateness p99 (ms)")
    left.axhline(LATE_MS, linestyle=":", color="grey")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("senses @1 s (20 groups, one per 100 beyond 2,000)")
    left.set_ylabel("lateness p99 (ms)")
    cpu = [p["cpu"] for p in points]
    _finish(
        plt, figure, left, (senses, cpu, "kernel CPU %", "kernel CPU (%)"), folder / "scaling.png"
    )
    figure, left = plt.subplots(figsize=(6, 3.5))
    slots = [f["concurrency"] for f in flows]
    left.plot(slots, [f["runs_per_s"] for f in flows], "o-", label="runs/s")
    left.plot(slots, [f["ideal_per_s"] for f in flows], ":", color="grey", label="slots / 20 ms")
    left.set_xlabel("workflow concurrency (each role waits 20 ms)")
    left.set_ylabel("runs a second")
    p99 = [f["p99"] for f in flows]
    right = (slots, p99, "launch p99 (ms)", "launch → role start p99 (ms)")
    _finish(plt, figure, left, right, folder / "workflows.png")
    return [str(folder / "scaling.png"), str(folder / "workflows.png")]


def _finish(plt: Any, figure: Any, left: Any, right: tuple[Any, ...], path: Path) -> None:
    """The red series on its own axis at the right (x, y, label, axis title), then saved."""
    x, y, label, title = right
    axis = left.twinx()
    axis.plot(x, y, "s--", color="tab:red", label=label)
    axis.set_ylabel(title)
    figure.legend(loc="upper left", bbox_to_anchor=(0.12, 0.95))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    points = [anyio.run(measure, senses) for senses in POINTS]
    rows = []
    for p in points:
        goal = ">= 99 %" if p["senses"] == 500 else "-"
        holds = ("yes" if p["within"] >= 99 else "NO") if p["senses"] == 500 else "-"
        rows.append(
            (
                f"{p['senses']:,.0f} senses: started within 50 ms",
                f"{p['within']:.1f} %",
                "-",
                "-",
                goal,
                holds,
            )
        )
    passes = crossing(points)
    rows.append(("lateness p99 passes 50 ms at", passes, "-", "-", "-", "-"))
    flows = [anyio.run(measure_workflows, slots) for slots in CONCURRENCY]
    for f in flows:
        rows.append(
            (
                f"workflow concurrency {f['concurrency']:.0f}: runs/s (role waits 20 ms)",
                f"{f['runs_per_s']:,.0f}",
                f"{f['ideal_per_s']:,.0f} slots / 20 ms",
                f"{f['runs_per_s'] / f['ideal_per_s']:.2f}",
                "-",
                "-",
            )
        )
    print_table(f"scaling: senses @1 s, {SECONDS:g} s each; workflow concurrency", rows)
    table = [
        "| senses | groups | computes | kernel CPU | CPU per compute | lateness p50 / p99 "
        "| within 50 ms | RSS in all |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table += [
        f"| {p['senses']:,.0f} | {p['groups']:.0f} | {p['computes']:,.0f} | {p['cpu']:.0f} % | "
        f"{p['us_per_compute']:.0f} µs | {p['p50']:.1f} / {p['p99']:.1f} ms | "
        f"{p['within']:.1f} % | {p['rss_mb']:.0f} MB |"
        for p in points
    ]
    table += [
        "",
        "| workflow concurrency | runs | runs/s | slots / 20 ms | launch → role start p50 / p99 |",
        "|---|---|---|---|---|",
    ]
    table += [
        f"| {f['concurrency']:.0f} | {f['runs']:.0f} | {f['runs_per_s']:,.0f} | "
        f"{f['ideal_per_s']:,.0f} | {f['p50']:.1f} / {f['p99']:.1f} ms |"
        for f in flows
    ]
    print("\n" + "\n".join(table))
    full = not QUICK and "--senses" not in sys.argv  # the plots in git are a full run's
    pictures = plot(points, flows) if full else []
    note = f"Lateness p99 passes 50 ms at {passes}."
    if pictures:
        note += (
            " Plots: " + ", ".join(f"`{Path(p).name}`" for p in pictures) + " in bench/results/."
        )
    record({"curve": "\n".join(table) + "\n\n" + note, "points": points, "workflows": flows})


if __name__ == "__main__":
    main()
