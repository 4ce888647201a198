"""The kernel stopped (SIGSTOP) under load, then continued: while it is stopped `nerve status`
fails at once and cleanly (exit 3, the reason and the way out); once it continues, no worker is
killed as hung, no compute times out that did not run long, and each sense computes at most
once for all the ticks it missed (no burst). `make faults` stops it for 30 s."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from ..scale import scaled
from .conftest import Figure, daemon_workspace, query, wait_for

pytestmark = pytest.mark.slow

STOPPED_S = scaled(5, 30)
SENSES = 6
# Each compute signals the wall time it started at.
WORKS = (
    "import time\n\ndef compute(ctx):\n    at = time.time()\n    time.sleep(0.05)\n    return at\n"
)
# `long` is always computing (0.8 s of its 1 s timeout, ticks every 200 ms): the kernel stops
# with its compute in flight, which answers while the kernel is stopped.
LONG = "import time\n\ndef compute(ctx):\n    time.sleep(0.8)\n    return time.time()\n"
CONFIG = (
    "senses:\n  long: {group: busy, timeout: 1s}\n"
    + "".join(f"  s{n}: {{group: g{n % 3}, timeout: 1s}}\n" for n in range(SENSES))
    + "reflexes:\n  - sense: long\n    interval: 200ms\n"
    + "".join(f"  - sense: s{n}\n    interval: 200ms\n" for n in range(SENSES))
)


@pytest.fixture
def root() -> Iterator[Path]:
    senses = {f"s{n}": WORKS for n in range(SENSES)}
    with daemon_workspace(CONFIG, {**senses, "long": LONG}) as root:
        yield root


def rows(root: Path, type_: str) -> list[tuple[str, int, str]]:
    return query(root, "SELECT source, ts, payload FROM logs WHERE type = ? ORDER BY id", type_)


def test_a_stopped_kernel_fails_status_cleanly_and_resumes_without_spurious_work(
    root: Path, figure: Figure
) -> None:
    assert run_nerve("start", cwd=root).code == 0
    pid = int((root / "nerve.pid").read_text())
    wait_for(lambda: len(rows(root, "signal")) > SENSES * 5, timeout=30)
    os.kill(pid, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        began = time.monotonic()
        status = run_nerve("status", cwd=root)
        answered_in = time.monotonic() - began
        assert status.code == 3
        assert status.err.strip() == (
            f"error: nerve (pid {pid}) is stopped (SIGSTOP, a debugger or job control) and does "
            f"not answer: `kill -CONT {pid}` resumes it"
        )
        time.sleep(max(0.0, STOPPED_S - (time.time() - stopped_at)))  # the stop itself
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_at = time.time()
    wait_for(lambda: run_nerve("status", cwd=root).code == 0, timeout=30)
    time.sleep(2.0)  # two seconds of ticks after the resume, to count
    counted_until = time.time()
    assert run_nerve("stop", cwd=root).code == 0

    assert rows(root, "compute.timeout") == []
    exits = [json.loads(payload) for _, _, payload in rows(root, "worker.exit")]
    assert [e for e in exits if e["reason"] != "stopped"] == []  # none killed as hung
    starts: dict[str, list[float]] = {}
    for source, _, payload in rows(root, "signal"):
        starts.setdefault(source, []).append(json.loads(payload))
    watched = counted_until - resumed_at  # the span after the resume whose computes count
    ticks = watched / 0.2  # what each sense's 200 ms grid holds in that span
    starts.pop("long")
    after = {
        s: sum(1 for at in times if resumed_at <= at < resumed_at + watched)
        for s, times in starts.items()
    }
    assert sorted(after) == [f"s{n}" for n in range(SENSES)]
    # The ticks missed while stopped come to one compute, not a burst of STOPPED_S / 0.2.
    assert max(after.values()) <= ticks + 2, (after, ticks)
    assert min(after.values()) >= ticks / 2, (after, ticks)  # and each went on ticking
    figure(
        f"the kernel SIGSTOPped for {STOPPED_S} s under {SENSES} senses @200 ms",
        f"`nerve status` exit 3 in {answered_in:.1f} s naming the stop and `kill -CONT`; after "
        f"SIGCONT no compute.timeout, no worker killed; computes per sense in the {watched:.1f} s "
        f"after: {min(after.values())}–{max(after.values())} for {ticks:.1f} ticks (one for "
        f"the {STOPPED_S / 0.2:.0f} missed, then its grid)",
    )
