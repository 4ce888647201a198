"""Helpers shared by the benchmarks: repeated, alternating measurements and a printed table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence

import psutil


def machine() -> str:
    return (
        f"{platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {sys.version.split()[0]}"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


HEADER = ("figure", "nerve", "baseline", "ratio", "goal", "holds")


def print_table(title: str, rows: Sequence[Sequence[str]]) -> None:
    """Print a bench's figures; under `bench/run.py`, also hand them over as one JSON line."""
    widths = [max(len(str(row[i])) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    print(f"\n{title} ({machine()})")
    for row in [HEADER, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    record({"title": title, "rows": [[str(cell) for cell in row] for row in rows]})


def record(entry: dict[str, object]) -> None:
    """Append `entry` (with the bench's name) to the run's results, when `bench/run.py` runs
    this bench (it names the file in NERVE_BENCH_RESULTS)."""
    path = os.environ.get("NERVE_BENCH_RESULTS")
    if path:
        entry = {"bench": os.path.basename(sys.argv[0]).removesuffix(".py"), **entry}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")


# -- an embedded kernel on a throwaway workspace --------------------------------------------------

import tempfile  # noqa: E402
import textwrap  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402
from pathlib import Path  # noqa: E402


def lateness_recorder() -> tuple[list[float], object]:
    """A list of interval lateness figures (ms, tick → compute start in the worker) and the
    `on_compute` observer that fills it."""
    lateness: list[float] = []
    # A tick's `scheduled` is wall time (grids are anchored on the epoch); the worker's start is
    # monotonic: the offset between the two clocks, read once, converts one to the other.
    offset = time.time() - time.monotonic()

    def on_compute(sense: str, trigger: object, outcome: object) -> None:
        scheduled = trigger.scheduled  # type: ignore[attr-defined]
        result = outcome.result  # type: ignore[attr-defined]
        if scheduled is not None and result is not None:
            lateness.append((result.started_mono - (scheduled - offset)) * 1000)

    return lateness, on_compute


def interval_config(senses: int, groups: int, interval: str) -> str:
    """nerve.yaml for `senses` senses `s0…` spread over `groups` groups, each on `interval`."""
    lines = ["senses:"]
    lines += [f"  s{n}: {{group: g{n % groups}}}" for n in range(senses)]
    lines.append("reflexes:")
    lines += [f"  - sense: s{n}\n    interval: {interval}" for n in range(senses)]
    return "\n".join(lines) + "\n"


def write_workspace(root: Path, config: str, senses: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nerve.yaml").write_text(textwrap.dedent(config))
    for name, code in senses.items():
        folder = root / "senses" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "compute.py").write_text(textwrap.dedent(code))
    return root


@asynccontextmanager
async def embedded_kernel(
    config: str, senses: dict[str, str], before_start: object = None, **options: object
) -> AsyncIterator[object]:
    """A running `Kernel` on a temporary workspace; keyword arguments go to KernelOptions;
    `before_start(root)` may add files first."""
    import anyio

    from nerve_core import parse_nerve_config
    from nerve_daemon.kernel import Kernel, KernelOptions

    with tempfile.TemporaryDirectory(prefix="nerve-bench-") as folder:
        root = write_workspace(Path(folder), config, senses)
        if callable(before_start):
            before_start(root)
        parsed = parse_nerve_config((root / "nerve.yaml").read_text())
        assert parsed.ok, str(parsed.error)
        kernel = Kernel(parsed.value, root, KernelOptions(**options))  # type: ignore[arg-type]
        async with anyio.create_task_group() as group:
            await group.start(kernel.run)
            try:
                yield kernel
            finally:
                kernel.stop()
                await kernel.stopped.wait()


# -- the peers, from .venv/peers ------------------------------------------------------------------

import subprocess  # noqa: E402
from typing import Any  # noqa: E402

PEERS = Path(__file__).resolve().parents[1] / ".venv" / "peers"


def run_peer(script: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run bench/peers/`script` with the peers `make bench` installed in .venv/peers first on its
    path (APScheduler 4 there, not the bench extra's 3); what it printed last, as JSON."""
    if not (PEERS / "huey").is_dir() or not (PEERS / "apscheduler").is_dir():
        raise SystemExit(f"the peers are not installed in {PEERS}: run `make bench`")
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "peers" / script), *args],
        env={**os.environ, "PYTHONPATH": str(PEERS)},
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result
