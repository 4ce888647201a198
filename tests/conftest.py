"""Shared fixtures: every test must leave no child process behind."""

from __future__ import annotations

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
