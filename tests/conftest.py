"""Shared fixtures: every test must leave no child process behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest


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
