"""Run every benchmark in bench/ in one go, each measuring nerve and its baseline in the same run,
then write the results to bench/results/<timestamp>.json and the table into BENCHMARKS.md.

    .venv/bin/python bench/run.py [--quick] [--only NAME[,NAME…]]

`make bench` runs it in full (under 10 minutes on 2 cores), `make bench-quick` with --quick
(under 2 minutes). Only the part of BENCHMARKS.md between its results markers is rewritten.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import HEADER, machine

BENCH = Path(__file__).parent
RESULTS = BENCH / "results"
DOC = BENCH.parent / "BENCHMARKS.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# The order they run in: the quick and quiet first, the long scaling curve last.
ORDER = [
    "cli",
    "log_append",
    "signal_latency",
    "compute_throughput",
    "respawn",
    "ipc",
    "workflow_rounds",
    "durable",
    "log_growth",
    "timer_jitter",
    "timers",
    "idle",
    "scaling",
]


def benches(only: list[str] | None) -> list[Path]:
    found = {path.stem: path for path in BENCH.glob("*.py") if not path.stem.startswith("_")}
    found.pop("run")
    unknown = set(found) - set(ORDER)
    if unknown:
        raise SystemExit(f"bench/run.py: add {sorted(unknown)} to ORDER")
    names = [name for name in ORDER if only is None or name in only]
    return [found[name] for name in names]


def run_all(quick: bool, only: list[str] | None) -> tuple[list[dict[str, object]], list[str]]:
    """Run each bench in its own interpreter; return what they recorded and which failed."""
    entries: list[dict[str, object]] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nerve-bench-") as folder:
        sink = Path(folder) / "results.jsonl"
        env = {**os.environ, "NERVE_BENCH_RESULTS": str(sink)}
        for script in benches(only):
            began = time.monotonic()
            print(f"\n== {script.stem}", flush=True)
            args = [sys.executable, str(script), *(["--quick"] if quick else [])]
            if subprocess.run(args, env=env, check=False).returncode != 0:
                failed.append(script.stem)
            print(f"   ({time.monotonic() - began:.0f} s)", flush=True)
        if sink.exists():
            entries = [json.loads(line) for line in sink.read_text().splitlines()]
    return entries, failed


def markdown(entries: list[dict[str, object]], quick: bool, stamp: str) -> str:
    mode = "quick mode (`make bench-quick`)" if quick else "`make bench`"
    lines = [
        f"Measured {stamp} with {mode} on {machine()}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    for entry in entries:
        if "rows" not in entry:
            continue
        lines.append(f"| **{entry['title']}** |" + " |" * (len(HEADER) - 1))
        for row in entry["rows"]:  # type: ignore[attr-defined]
            lines.append("| " + " | ".join(str(cell).replace("|", "/") for cell in row) + " |")
    curve = next((entry for entry in entries if "curve" in entry), None)
    if curve is not None:
        lines += ["", "### Scaling curve", "", str(curve["curve"])]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    DOC.write_text(f"{before}{START}\n{section}\n{END}{after}")


def main() -> None:
    quick = "--quick" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    began = time.monotonic()
    entries, failed = run_all(quick, only)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    RESULTS.mkdir(exist_ok=True)
    result = {
        "stamp": stamp,
        "quick": quick,
        "machine": machine(),
        "seconds": round(time.monotonic() - began, 1),
        "failed": failed,
        "benches": entries,
    }
    (RESULTS / f"{stamp}.json").write_text(json.dumps(result, indent=1) + "\n")
    section = markdown(entries, quick, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    if only is None:
        write_doc(section)
    print(f"\n{section}\n")
    print(f"results: bench/results/{stamp}.json ({result['seconds']:.0f} s in all)")
    if failed:
        raise SystemExit(f"these benches failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
