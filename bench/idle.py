"""Idle cost: the kernel's CPU and memory with the example workspace idle (its senses on their
intervals), an idle group worker's own memory (USS) against a fresh interpreter importing the
same libraries, and the memory of all nerve's processes (USS: kernel, fork server, workers)
against the peers idling with three periodic jobs (a huey consumer, an APScheduler 4 process;
from `.venv/peers`), in the same run.

    .venv/bin/python bench/idle.py [--quick]

Goals: kernel <= 1 % CPU and <= 80 MB RSS; an idle worker <= 8 MB USS; all processes <= 40 MB.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, print_table, run_peer

from nerve_core import load_nerve_config
from nerve_daemon.kernel import Kernel

QUICK = "--quick" in sys.argv
SECONDS = 4.0 if QUICK else 20.0
REPO = Path(__file__).resolve().parents[1]


async def measure(root: Path) -> tuple[float, float, list[float], float]:
    kernel = Kernel(load_nerve_config(root / "nerve.yaml"), root)
    me = psutil.Process()
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        await anyio.sleep(3.0)  # past start-up and the first computes
        cpu_before, wall_before = sum(me.cpu_times()[:2]), time.monotonic()
        await anyio.sleep(SECONDS)
        cpu = (sum(me.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before) * 100
        rss = me.memory_info().rss / 2**20
        workers = [
            psutil.Process(g.worker.pid).memory_full_info().uss / 2**20
            for g in kernel.groups.values()
            if g.worker is not None and g.worker.alive
        ]
        family = [me, *me.children(recursive=True)]
        everything = sum(each.memory_full_info().uss for each in family) / 2**20
        kernel.stop()
    return cpu, rss, workers, everything


def peer_uss(which: str) -> float:
    with tempfile.TemporaryDirectory(prefix="nerve-idle-") as folder:
        seconds = "2" if QUICK else "5"
        return float(run_peer("idle_peers.py", which, folder, seconds, timeout=120)["uss_mb"])


def fresh_uss() -> float:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import orjson, sqlalchemy, anyio, psutil, nerve_store, nerve_daemon.senses.worker, sys; sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
    )
    time.sleep(1.5)
    uss = psutil.Process(child.pid).memory_full_info().uss / 2**20
    assert child.stdin is not None
    child.stdin.close()
    child.wait()
    return uss


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="nerve-idle-") as folder:
        root = Path(folder)
        shutil.copy(REPO / "nerve.yaml.example", root / "nerve.yaml")
        shutil.copytree(REPO / "senses", root / "senses")
        shutil.copytree(REPO / "workflows", root / "workflows")
        cpu, rss, workers, everything = anyio.run(measure, root)
    fresh = median([fresh_uss() for _ in range(1 if QUICK else 3)])
    huey, aps4 = peer_uss("huey"), peer_uss("aps4")
    worst = max(workers)
    print_table(
        f"idle, the example workspace for {SECONDS:g} s",
        [
            ("kernel CPU", f"{cpu:.2f} %", "-", "-", "<= 1 %", "yes" if cpu <= 1 else "NO"),
            ("kernel RSS", f"{rss:.0f} MB", "-", "-", "<= 80 MB", "yes" if rss <= 80 else "NO"),
            (
                "idle worker USS (largest)",
                f"{worst:.1f} MB",
                f"{fresh:.1f} MB fresh interpreter",
                f"{worst / fresh:.2f}",
                "<= 8 MB",
                "yes" if worst <= 8 else "NO",
            ),
            (
                f"USS, all processes ({len(workers)} workers)",
                f"{everything:.1f} MB",
                f"{huey:.1f} MB huey consumer",
                f"{everything / huey:.1f}",
                "<= 40 MB",
                "yes" if everything <= 40 else "NO",
            ),
            (
                "USS, all processes, against APScheduler 4",
                f"{everything:.1f} MB",
                f"{aps4:.1f} MB APScheduler 4",
                f"{everything / aps4:.1f}",
                "-",
                "-",
            ),
        ],
    )


if __name__ == "__main__":
    main()
