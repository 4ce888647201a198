"""The scaling curve: 50, 200, 500, 1,000 (and in full mode 2,000) senses in 20 groups at 1 s intervals. For each, the
kernel's CPU, compute lateness (tick → compute start in the worker) and the share started within
50 ms; then the point where lateness p99 passes 50 ms. A PNG plot is written to bench/results/
when matplotlib is installed (it is not a dependency of nerve).

    .venv/bin/python bench/scaling.py [--quick] [--senses N[,N…]]

Goal: 500 senses, >= 99 % started within 50 ms.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

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
SECONDS = 4.0 if QUICK else 20.0
POINTS = (
    [int(n) for n in sys.argv[sys.argv.index("--senses") + 1].split(",")]
    if "--senses" in sys.argv
    else [50, 200, 500, 1000] + ([] if QUICK else [2000])
)
GROUPS = 20
LATE_MS = 50.0


async def measure(senses: int) -> dict[str, float]:
    lateness, on_compute = lateness_recorder()
    code = {f"s{n}": "def compute(ctx):\n    return None\n" for n in range(senses)}
    me = psutil.Process()
    async with embedded_kernel(interval_config(senses, GROUPS, "1s"), code, on_compute=on_compute):
        await anyio.sleep(2.0)  # warm up: every group's worker up and the grid running
        lateness.clear()
        cpu_before, wall_before = sum(me.cpu_times()[:2]), time.monotonic()
        await anyio.sleep(SECONDS)
        cpu = (sum(me.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before) * 100
        workers_rss = sum(c.memory_info().rss for c in me.children(recursive=True))
    within = sum(1 for value in lateness if value <= LATE_MS) / max(1, len(lateness)) * 100
    return {
        "senses": senses,
        "computes": len(lateness),
        "cpu": cpu,
        "p50": percentile(lateness, 50),
        "p99": percentile(lateness, 99),
        "within": within,
        "rss_mb": (me.memory_info().rss + workers_rss) / 2**20,
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


def plot(points: list[dict[str, float]]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    out = Path(__file__).parent / "results" / "scaling.png"
    out.parent.mkdir(exist_ok=True)
    figure, left = plt.subplots(figsize=(6, 3.5))
    senses = [p["senses"] for p in points]
    left.plot(senses, [p["p99"] for p in points], "o-", label="lateness p99 (ms)")
    left.axhline(LATE_MS, linestyle=":", color="grey")
    left.set_xlabel("senses @1 s in 20 groups")
    left.set_ylabel("lateness p99 (ms)")
    right = left.twinx()
    right.plot(senses, [p["cpu"] for p in points], "s--", color="tab:red", label="kernel CPU %")
    right.set_ylabel("kernel CPU (%)")
    figure.legend(loc="upper left", bbox_to_anchor=(0.12, 0.95))
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    return str(out)


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
    print_table(f"scaling: senses in {GROUPS} groups @1 s, {SECONDS:g} s each", rows)
    table = ["| senses | computes | kernel CPU | lateness p50 / p99 | within 50 ms | RSS in all |"]
    table.append("|---|---|---|---|---|---|")
    table += [
        f"| {p['senses']:,.0f} | {p['computes']:,.0f} | {p['cpu']:.0f} % | "
        f"{p['p50']:.1f} / {p['p99']:.1f} ms | {p['within']:.1f} % | {p['rss_mb']:.0f} MB |"
        for p in points
    ]
    print("\n" + "\n".join(table))
    picture = plot(points)
    note = f"Lateness p99 passes 50 ms at {passes}."
    note += f" Plot: `{Path(picture).name}` in bench/results/." if picture else ""
    record({"curve": "\n".join(table) + "\n\n" + note, "points": points})


if __name__ == "__main__":
    main()
