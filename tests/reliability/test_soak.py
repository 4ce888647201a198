"""Steady work against the real daemon: 50 senses every 100 ms, four workflow launches a second,
the archive configured. Memory stays flat after warm-up (and grows under 1 MB an hour over a long
soak), no file descriptor leaks, no zombie is left, the WAL stays bounded, and launches are
acknowledged as fast at the end as at the start. `make test` runs it for 20 s at half the load,
`make soak` for 6 hours (NERVE_SOAK_SECONDS sets another length)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from ..cli.conftest import run_nerve
from ..scale import scaled
from .conftest import ECHO, Figure, daemon_workspace

pytestmark = pytest.mark.slow
T = TypeVar("T")

SENSES, GROUPS = scaled(25, 50), 5  # @100 ms each: make test runs half the load
HOUR_S = 3600.0
SOAK_S = float(os.environ.get("NERVE_SOAK_SECONDS", scaled(16, 6 * 3600)))
# Long enough for the kernel's bounded caches to fill: it remembers the causes of the last
# 10,000 runs (~2 MB), 42 minutes at 4 launches a second. A half-hour soak grew 2.1 MB/h while
# that filled, which a growth-per-hour check cannot tell from a leak.
WARM_UP_S = min(SOAK_S / 4, HOUR_S)
LAUNCH_EVERY_S = 0.25
LONG = SOAK_S >= 2 * HOUR_S  # long enough for growth per hour to mean something
WAL_BOUND = 8 * 1024 * 1024 + 4 * 1024 * 1024  # journal_size_limit, and a burst's headroom
PROGRESS_S = 600.0  # a long soak prints a line this often (`make soak` shows them: pytest -s)


@pytest.fixture
def root() -> Iterator[Path]:
    names = [f"s{i:02d}" for i in range(SENSES)]
    config = "senses:\n" + "".join(
        f"  {n}: {{group: g{i % GROUPS}}}\n" for i, n in enumerate(names)
    )
    config += "reflexes:\n" + "".join(f"  - sense: {n}\n    interval: 100ms\n" for n in names)
    config += "workflows:\n  echo: {concurrency: 2, overflow: queue}\n"
    config += "store: {archive_after: 1h}\n"  # whole UTC days: a soak past midnight moves one
    code = "def compute(ctx):\n    return {'n': ctx.trigger}\n"
    with daemon_workspace(config, dict.fromkeys(names, code), {"echo": ECHO}) as root:
        yield root


@dataclass
class Samples:
    at: list[float] = field(default_factory=list)
    kernel_rss: list[int] = field(default_factory=list)
    workers_rss: list[int] = field(default_factory=list)
    kernel_fds: list[int] = field(default_factory=list)
    zombies: list[int] = field(default_factory=list)
    wal: list[int] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)  # seconds to each launch's answer

    def take(self, daemon: psutil.Process, elapsed: float, wal: Path) -> None:
        children = daemon.children(recursive=True)
        live = [c for c in children if _status(c) not in (None, psutil.STATUS_ZOMBIE)]
        self.at.append(elapsed)
        self.kernel_rss.append(daemon.memory_info().rss)
        self.workers_rss.append(sum(_rss(c) for c in live))
        self.kernel_fds.append(daemon.num_fds())
        self.zombies.append(sum(1 for c in children if _status(c) == psutil.STATUS_ZOMBIE))
        self.wal.append(wal.stat().st_size if wal.exists() else 0)

    def window(self, values: list[T], start: float, end: float) -> list[T]:
        return [v for at, v in zip(self.at, values, strict=True) if start <= at < end]

    def progress(self) -> str:
        """One line on the last PROGRESS_S: a soak that is stopped early still said how it went."""
        now = self.at[-1]
        acks = self.window(self.acks, now - PROGRESS_S, now + 1)
        return (
            f"soak {now / HOUR_S:5.2f} h: kernel RSS {self.kernel_rss[-1] / 1e6:.1f} MB, "
            f"workers {self.workers_rss[-1] / 1e6:.1f} MB, kernel fds "
            f"{min(self.window(self.kernel_fds, now - PROGRESS_S, now + 1))}, WAL "
            f"{self.wal[-1] / 1e6:.1f} MB, zombies {self.zombies[-1]}, launch ack p99 "
            f"{p99(acks) * 1000:.1f} ms over the last {PROGRESS_S / 60:.0f} min"
        )


def _crossed(samples: Samples) -> bool:
    """Whether the last sample is the first one past a PROGRESS_S mark."""
    return len(samples.at) > 1 and samples.at[-1] // PROGRESS_S > samples.at[-2] // PROGRESS_S


def _status(process: psutil.Process) -> str | None:
    try:
        return str(process.status())
    except psutil.NoSuchProcess:
        return None


def _rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


def trigger(root: Path) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(root / "nerve.sock"))
        sock.sendall(b'{"type":"trigger-workflow","workflow":"echo","prompt":"soak"}\n')
        answer = json.loads(sock.makefile("rb").readline())
    assert answer["ok"], answer
    return str(answer["runId"])


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@pytest.mark.timeout(SOAK_S + 300)
def test_a_soak_of_50_senses_and_four_launches_a_second_leaks_nothing_and_slows_nothing(
    root: Path, figure: Figure
) -> None:
    assert run_nerve("start", cwd=root).code == 0
    daemon = psutil.Process(int((root / "nerve.pid").read_text()))
    samples, runs = Samples(), []
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < SOAK_S:
        sent = time.monotonic()
        runs.append(trigger(root))
        samples.acks.append(time.monotonic() - sent)
        samples.take(daemon, elapsed, root / "data/logs.db-wal")
        if LONG and _crossed(samples):
            print(samples.progress(), flush=True)
        time.sleep(max(0.0, LAUNCH_EVERY_S - (time.monotonic() - began - elapsed)))
    deadline = time.monotonic() + 30
    with (
        contextlib.closing(
            sqlite3.connect(f"file:{root / 'data/logs.db'}?mode=ro", uri=True)
        ) as db,
        db,
    ):
        while time.monotonic() < deadline:
            done = db.execute(
                "SELECT count(*) FROM workflow_runs WHERE status = 'completed'"
            ).fetchone()[0]
            if done == len(runs):
                break
            time.sleep(0.2)
        signals = db.execute("SELECT count(*) FROM logs WHERE type = 'signal'").fetchone()[0]
        errors = db.execute(
            "SELECT count(*) FROM logs WHERE type IN ('compute.error', 'compute.timeout',"
            " 'compute.crash', 'worker.exit')"
        ).fetchone()[0]
    assert done == len(runs)
    assert errors == 0
    assert run_nerve("stop", cwd=root).code == 0

    window = min(HOUR_S, SOAK_S / 3)  # compared over the same length at both ends
    early = (WARM_UP_S, WARM_UP_S + window)  # just after warm-up
    late = (SOAK_S - window, SOAK_S)
    hours = (late[0] - early[0]) / HOUR_S
    growth, per_hour = {}, {}
    for name, values in (("kernel", samples.kernel_rss), ("workers", samples.workers_rss)):
        before = statistics.median(samples.window(values, *early))
        after = statistics.median(samples.window(values, *late))
        growth[name] = after / before - 1
        per_hour[name] = (after - before) / 1e6 / hours
        assert after <= before * 1.10, f"{name} RSS grew {growth[name]:.1%}"
        if LONG:  # a rate over minutes is noise: over two hours or more, under 1 MB an hour
            assert per_hour[name] < 1.0, f"{name} RSS grew {per_hour[name]:.2f} MB/h"
    assert max(samples.wal) <= WAL_BOUND, f"the WAL reached {max(samples.wal) / 1e6:.1f} MB"
    ack_early = p99(samples.window(samples.acks, *early))
    ack_late = p99(samples.window(samples.acks, *late))
    # Within 20 %, with a floor: a p99 of a few ms moves by more than that on a busy box, and the
    # short soak's windows hold some twenty acks each, so their p99 is their slowest one.
    floor = 0.010 if LONG else 0.030
    assert ack_late <= max(ack_early * 1.2, ack_early + floor), (ack_early, ack_late)
    # The floor of open descriptors, not the peak: the request just sent may still hold one.
    assert min(samples.window(samples.kernel_fds, *late)) <= min(
        samples.window(samples.kernel_fds, *early)
    )
    assert max(samples.zombies) <= 1  # a worker may be caught between its exit and its reaping
    assert samples.zombies[-1] == 0
    expected = SENSES * 10 * SOAK_S
    # ~101-103 % measured (computes go on while the last runs finish); fewer means missed ticks,
    # many more means duplicate computes.
    assert 0.9 * expected <= signals <= 1.1 * expected, f"{signals} of {expected:.0f} scheduled"
    rates = {name: f", {per_hour[name]:+.2f} MB/h" if LONG else "" for name in per_hour}
    figure(
        f"soak: {SENSES} senses @100 ms + 4 launches/s for {SOAK_S:.0f} s",
        f"{signals} computes ({signals / expected:.0%} of {expected:.0f} scheduled), "
        f"{len(runs)}/{len(runs)} runs completed, 0 errors; RSS after warm-up: kernel "
        f"{growth['kernel']:+.1%} ({samples.kernel_rss[-1] / 1e6:.0f} MB{rates['kernel']}), "
        f"workers {growth['workers']:+.1%} ({samples.workers_rss[-1] / 1e6:.0f} MB in all"
        f"{rates['workers']}); kernel fds {min(samples.kernel_fds)}–{max(samples.kernel_fds)} "
        f"(floor flat); zombies 0; WAL at most {max(samples.wal) / 1e6:.1f} MB; launch ack p99 "
        f"{ack_early * 1000:.1f} ms after warm-up, {ack_late * 1000:.1f} ms at the end",
    )
