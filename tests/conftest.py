"""Shared fixtures: every test must leave no child process behind. The reliability suite's
figures are gathered here (from `user_properties`, so they reach the summary under xdist too)
and printed at the end of the run."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from .daemon.conftest import SLEEPER, build_workspace


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    yield
    me = psutil.Process()
    deadline = time.monotonic() + 5
    while (children := me.children(recursive=True)) and time.monotonic() < deadline:
        time.sleep(0.05)  # a process just killed may still be on its way out
    leaked = [f"{child.pid} {child.name()}" for child in children if child.is_running()]
    assert not leaked, f"the test left processes running: {leaked}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A workspace (sense `a`, workflow `slow` that queues) under a short path: a Unix socket
    path is limited to 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="nv-", dir="/tmp"))
    yield build_workspace(
        folder / "ws",
        "senses:\n  a: {}\nworkflows:\n  slow:\n    overflow: queue\n",
        {"a": "def compute(ctx):\n    return {'n': 1}\n"},
        workflows={"slow": SLEEPER},
    )
    shutil.rmtree(folder)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The soak runs longest: start it first, so that with `-n 2` the rest runs beside it."""
    items.sort(key=lambda item: "test_soak" not in item.nodeid)


FIGURE = "nerve-figure"
_figures: list[dict[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _figures.extend(value for key, value in report.user_properties if key == FIGURE)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _figures:
        return
    terminalreporter.section("reliability figures")
    for figure in sorted(_figures, key=lambda f: f["what"]):
        terminalreporter.write_line(f"{figure['what']}:")
        terminalreporter.write_line(f"    {figure['value']}")
    out = Path(str(terminalreporter.config.rootpath)) / ".reliability-figures.json"
    out.write_text(json.dumps(sorted(_figures, key=lambda f: f["what"]), indent=1) + "\n")
