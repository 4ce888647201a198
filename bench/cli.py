"""CLI start-up: median wall time of `nerve --help`, `nerve sense list --json` and `nerve status`
(with a daemon running), against `python -c "import typer"`, the floor of any typer CLI, in the
same run; and the commands against a second floor: a bare typer command with one path option and
one flag, which pays what typer 0.2x does to parse any option (it builds a pydantic TypeAdapter
per parameter).

    .venv/bin/python bench/cli.py [--quick]

Goals: `nerve --help` <= 1.8 x the floor; the others <= 2.5 x.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, print_table, write_workspace

QUICK = "--quick" in sys.argv
RUNS = 5 if QUICK else 15
NERVE = str(Path(sys.executable).parent / "nerve")
BARE_COMMAND = """
from pathlib import Path
from typing import Annotated, Optional
import typer

app = typer.Typer()

@app.command()
def status(
    root: Annotated[Optional[Path], typer.Option("--root")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    print("ok")

@app.command()
def other() -> None:
    pass

app()
"""


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="nv-bench-", dir="/tmp"))
    root = write_workspace(
        folder / "ws", "senses:\n  a: {}\n", {"a": "def compute(ctx):\n    return 1\n"}
    )
    subprocess.run([NERVE, "start", "--root", str(root)], check=True, stdout=subprocess.DEVNULL)
    commands = {
        "floor": [sys.executable, "-c", "import typer"],
        "bare": [sys.executable, "-c", BARE_COMMAND, "status", "--root", str(root), "--json"],
        "nerve --help": [NERVE, "--help"],
        "nerve sense list --json": [NERVE, "sense", "list", "--json", "--root", str(root)],
        "nerve status": [NERVE, "status", "--root", str(root)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for _ in range(RUNS):  # alternate, so drift hits every command alike
            for name, command in commands.items():
                times[name].append(timed(command))
    finally:
        subprocess.run([NERVE, "stop", "--root", str(root)], check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(folder)
    floor = median(times["floor"])
    rows = []
    for name, goal in (
        ("nerve --help", 1.8),
        ("nerve sense list --json", 2.5),
        ("nerve status", 2.5),
    ):
        value = median(times[name])
        rows.append(
            (
                name,
                f"{value:.0f} ms",
                f"{floor:.0f} ms import typer",
                f"{value / floor:.2f}",
                f"<= {goal} x",
                "yes" if value / floor <= goal else "NO",
            )
        )
    bare = median(times["bare"])
    for name in ("nerve sense list --json", "nerve status"):
        value = median(times[name])
        rows.append(
            (
                f"{name}, against a bare typer command",
                f"{value:.0f} ms",
                f"{bare:.0f} ms bare command",
                f"{value / bare:.2f}",
                "-",
                "-",
            )
        )
    print_table("CLI wall time (median)", rows)


if __name__ == "__main__":
    main()
