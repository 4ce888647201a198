"""An embedded kernel on a workspace built per test, and a recorder of what it does."""

from __future__ import annotations

import textwrap
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from nerve_core import parse_nerve_config
from nerve_daemon.kernel import Kernel, KernelOptions
from nerve_daemon.senses.group import ComputeOutcome
from nerve_daemon.senses.scheduler import Trigger
from nerve_daemon.supervise.policy import GroupPolicy
from nerve_store import LogRow


def build_workspace(
    root: Path,
    config: str,
    senses: dict[str, str],
    files: dict[str, str] | None = None,
    workflows: dict[str, str] | None = None,
) -> Path:
    """Write nerve.yaml, `senses/<name>/compute.py` for each sense, `workflows/<name>/workflow.py`
    for each workflow, and any other `files` (by path relative to the workspace)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nerve.yaml").write_text(textwrap.dedent(config))
    for name, code in senses.items():
        folder = root / "senses" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "compute.py").write_text(textwrap.dedent(code))
    for name, code in (workflows or {}).items():
        folder = root / "workflows" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "workflow.py").write_text(textwrap.dedent(code))
    for relative, text in (files or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@dataclass
class Recorder:
    rows: list[LogRow] = field(default_factory=list)
    computes: list[tuple[str, Trigger, ComputeOutcome]] = field(default_factory=list)
    output: list[tuple[str, str]] = field(default_factory=list)
    compute_times: list[float] = field(default_factory=list)  # monotonic, one per compute

    def on_compute(self, sense: str, trigger: Trigger, outcome: ComputeOutcome) -> None:
        self.computes.append((sense, trigger, outcome))
        self.compute_times.append(time.monotonic())

    def of(self, type_: str, source: str | None = None) -> list[LogRow]:
        return [r for r in self.rows if r.type == type_ and (source is None or r.source == source)]

    def statuses(self, run_id: str) -> list[str]:
        """The status history of a run, as committed."""
        return [
            r.payload["status"]
            for r in self.rows
            if r.type == "workflow.status" and r.ref_id == run_id
        ]

    def computes_of(self, sense: str) -> list[tuple[Trigger, ComputeOutcome]]:
        return [(trigger, outcome) for name, trigger, outcome in self.computes if name == sense]


async def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)
    assert predicate(), what


# A workflow whose one role sleeps for as many seconds as its prompt says.
SLEEPER = """
import time
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "sleeper" if thread[-1].role == START else END

def sleeper(ctx):
    time.sleep(float(ctx.prompt or "0"))
    return "slept"

definition = WorkflowDefinition(moderator=moderator, roles={"sleeper": sleeper})
"""


# Two roles, "first" then "second"; "second" prints "second begins <run id>", then sleeps
# `seconds` (use .format(seconds=…)), so a test can kill something while it is mid-turn.
TWO_STEPS = """
import time
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return {{START: "first", "first": "second"}}.get(thread[-1].role, END)

def first(ctx):
    return "one"

def second(ctx):
    print("second begins", ctx.run_id, flush=True)
    time.sleep({seconds})
    return "two"

definition = WorkflowDefinition(moderator=moderator, roles={{"first": first, "second": second}})
"""

FAST_POLICY = GroupPolicy(backoff_first_s=0.05, backoff_max_s=0.2, stop_timeout_s=5.0)


@asynccontextmanager
async def running(
    root: Path, policy: GroupPolicy = FAST_POLICY, **more: Any
) -> AsyncIterator[tuple[Kernel, Recorder]]:
    """A kernel on `root`, recorded; `more` goes to KernelOptions (say, `watch_files=True`)."""
    parsed = parse_nerve_config((root / "nerve.yaml").read_text())
    assert parsed.ok, str(parsed.error)
    recorder = Recorder()
    options = KernelOptions(
        group_policy=policy,
        stop_timeout_s=10.0,
        **more,
        on_row=recorder.rows.append,
        on_compute=recorder.on_compute,
        on_output=lambda name, line: recorder.output.append((name, line)),
    )
    kernel = Kernel(parsed.value, root, options)
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        try:
            yield kernel, recorder
        finally:
            kernel.stop()
            with anyio.fail_after(30):
                await kernel.stopped.wait()


@pytest.fixture
def ws(tmp_path: Path) -> Callable[..., Path]:
    def make(
        config: str,
        senses: dict[str, str],
        files: dict[str, str] | None = None,
        workflows: dict[str, str] | None = None,
    ) -> Path:
        return build_workspace(tmp_path / "ws", config, senses, files, workflows)

    return make
