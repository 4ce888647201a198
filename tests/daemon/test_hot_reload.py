"""Hot reload through the real file watcher: code under senses/ and workflows/ reloads live, a
broken nerve.yaml is reported and the running config stays."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest

from nerve_core import LogType, RunStatus, WorkerState, parse_nerve_config
from nerve_daemon.control.file_watch import FileWatcher, relevant
from nerve_daemon.kernel import Kernel
from nerve_store import LogStore

from .conftest import Recorder, running, wait_until

pytestmark = pytest.mark.anyio

SLOW = """
import time
from nerve_core.workflow import END, START, WorkflowDefinition

VERSION = "{version}"

def moderator(thread):
    return "sleeper" if thread[-1].role == START else END

def sleeper(ctx):
    time.sleep(float(ctx.prompt or "0"))
    return VERSION

definition = WorkflowDefinition(moderator=moderator, roles={{"sleeper": sleeper}})
"""


def watched(
    root: Path, drain_timeout: float = 5.0
) -> AbstractAsyncContextManager[tuple[Kernel, Recorder]]:
    """A kernel that watches the workspace's files, as `nerve dev` and the daemon do."""
    return running(root, watch_files=True, drain_timeout_s=drain_timeout)


def save_by_rename(path: Path, text: str) -> None:
    """How many editors save: write a temp file beside it, then rename it over the original."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    os.replace(temp, path)


def test_only_files_that_change_behaviour_are_relevant(tmp_path: Path) -> None:
    root = tmp_path
    assert relevant(root, root / "nerve.yaml") == Path("nerve.yaml")
    assert relevant(root, root / "senses/a/compute.py") == Path("senses/a/compute.py")
    assert relevant(root, root / "senses/a/migrations/001.sql") == Path(
        "senses/a/migrations/001.sql"
    )
    for ignored in (
        "data/logs.db",
        "logs/nerve.log",
        "senses/a/__pycache__/compute.cpython-311.pyc",
        "senses/a/.compute.py.swp",
        "senses/a/compute.py~",
        "nerve.sock",
        "senses/readme",
    ):
        assert relevant(root, root / ignored) is None, ignored


async def test_an_edited_sense_saved_by_rename_reloads_its_group_only(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  edited: {group: one}\n  other: {group: two}\n",
        {
            "edited": "def compute(ctx):\n    return 'old'\n",
            "other": "def compute(ctx):\n    return 1\n",
        },
    )
    async with watched(root) as (kernel, recorder):
        before = {name: group.worker.pid for name, group in kernel.groups.items()}  # type: ignore[union-attr]
        kernel.trigger_sense("edited")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "edited"))
        save_by_rename(root / "senses/edited/compute.py", "def compute(ctx):\n    return 'new'\n")
        await wait_until(lambda: recorder.of(LogType.CONFIG_RELOAD))
        await wait_until(
            lambda: (
                kernel.groups["one"].worker is not None
                and kernel.groups["one"].worker.pid != before["one"]
                and kernel.groups["one"].state is WorkerState.RUNNING
            )
        )
        kernel.trigger_sense("edited")
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "edited")) == 2)
    assert [r.payload for r in recorder.of(LogType.SIGNAL, "edited")] == ["old", "new"]
    [reload] = recorder.of(LogType.CONFIG_RELOAD)
    assert reload.payload["groups"] == ["one"]
    assert reload.payload["changed"] == ["senses/edited/compute.py"]
    assert kernel.groups["two"].worker.pid == before["two"]  # type: ignore[union-attr]
    assert next(r.payload["reason"] for r in recorder.of(LogType.WORKER_EXIT)) == "reload"


async def test_a_sense_file_truncated_and_rewritten_reloads_once(ws: Callable[..., Path]) -> None:
    root = ws("senses:\n  a: {}\n", {"a": "def compute(ctx):\n    return 1\n"})
    async with watched(root) as (_, recorder):
        path = root / "senses/a/compute.py"
        with path.open("w") as handle:  # truncate, then write in pieces
            handle.write("def compute(ctx):\n")
            handle.flush()
            handle.write("    return 2\n")
        await wait_until(lambda: recorder.of(LogType.CONFIG_RELOAD))
        await anyio.sleep(1.0)
    assert len(recorder.of(LogType.CONFIG_RELOAD)) == 1


async def test_an_edited_workflow_drains_its_worker_with_a_run_in_flight(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "workflows:\n  slow:\n    concurrency: 2\n",
        {},
        workflows={"slow": SLOW.format(version="v1")},
    )
    async with watched(root, drain_timeout=1.0) as (kernel, recorder):
        long_run, _ = await kernel.trigger_workflow("slow", "30")
        short_run, _ = await kernel.trigger_workflow("slow", "0.3")
        save_by_rename(root / "workflows/slow/workflow.py", SLOW.format(version="v2"))
        await wait_until(lambda: recorder.of(LogType.CONFIG_RELOAD))
        runner = kernel.workflow_runners["slow"]
        await wait_until(
            lambda: (
                runner.state is WorkerState.RUNNING
                and recorder.statuses(long_run)[-1:] == ["interrupted"]
            )
        )
        after, _ = await kernel.trigger_workflow("slow", "0")
        await wait_until(lambda: recorder.statuses(after)[-1:] == ["completed"])
    with LogStore.open_readonly(root / "data/logs.db") as store:
        assert store.messages(short_run)[-1].content == "v1"  # finished on the old worker
        assert store.messages(after)[-1].content == "v2"  # new runs get the new code
        run = store.run(long_run)
    assert run is not None
    assert run.status is RunStatus.INTERRUPTED


async def test_an_invalid_nerve_yaml_is_logged_and_the_running_config_stays(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  a: {}\nreflexes:\n  - sense: a\n    interval: 100ms\n",
        {"a": "def compute(ctx):\n    return 1\n"},
    )
    async with watched(root) as (kernel, recorder):
        save_by_rename(
            root / "nerve.yaml", "senses:\n  a: {}\nreflexes:\n  - sense: a\n    interval: ten\n"
        )
        await wait_until(lambda: recorder.of(LogType.CONFIG_ERROR))
        before = len(recorder.of(LogType.SIGNAL, "a"))
        await wait_until(
            lambda: len(recorder.of(LogType.SIGNAL, "a")) >= before + 3
        )  # still running
        assert kernel.health().workers[0].state == "RUNNING"
    error = recorder.of(LogType.CONFIG_ERROR)[0].payload["error"]
    assert (
        error
        == 'nerve.yaml:5: reflexes[0].interval: invalid duration "ten": expected e.g. 500ms, 30s, 1m30s, 2h, 1d'
    )


BASE = """
senses:
  steady: {group: keep}
  changing: {group: moving}
reflexes:
  - sense: steady
    interval: 100ms
"""


async def test_a_valid_nerve_yaml_applies_as_a_diff(ws: Callable[..., Path]) -> None:
    root = ws(
        BASE + "workflows:\n  slow: {concurrency: 1, overflow: queue}\n",
        {
            "steady": "def compute(ctx):\n    return 'steady'\n",
            "changing": "def compute(ctx):\n    return 'changing'\n",
            "added": "def compute(ctx):\n    return 'added'\n",
        },
        workflows={"slow": SLOW.format(version="v1")},
    )
    async with watched(root) as (kernel, recorder):
        keep_pid = kernel.groups["keep"].worker.pid  # type: ignore[union-attr]
        first, _ = await kernel.trigger_workflow("slow", "2")
        second, status = await kernel.trigger_workflow("slow", "0")
        assert status is RunStatus.QUEUED
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "steady")) >= 2)
        save_by_rename(
            root / "nerve.yaml",
            """
senses:
  steady: {group: keep}
  added: {group: fresh}
reflexes:
  - sense: steady
    interval: 100ms
  - sense: added
    interval: 100ms
workflows:
  slow: {concurrency: 2, overflow: queue}
""",
        )
        await wait_until(
            lambda: any(
                r.payload.get("changed") == ["nerve.yaml"]
                for r in recorder.of(LogType.CONFIG_RELOAD)
            )
        )
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "added"))
        await wait_until(lambda: recorder.statuses(second)[-1:] == ["completed"])  # a second slot
        assert recorder.statuses(first)[-1:] == ["started"]  # still going, untouched
        steady_before = len(recorder.of(LogType.SIGNAL, "steady"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "steady")) >= steady_before + 2)
        assert set(kernel.groups) == {"keep", "fresh"}
        assert kernel.groups["keep"].worker.pid == keep_pid  # type: ignore[union-attr]
        assert [s.name for s in kernel.list_senses()] == ["steady", "added"]
        kernel.trigger_sense("added")
        from nerve_daemon.kernel import UnknownSense

        with pytest.raises(UnknownSense):
            kernel.trigger_sense("changing")
    reload = next(
        r.payload
        for r in recorder.of(LogType.CONFIG_RELOAD)
        if r.payload.get("changed") == ["nerve.yaml"]
    )
    assert reload["groups_added"] == ["fresh"]
    assert reload["groups_removed"] == ["moving"]
    assert reload["reflexes_changed"] is True
    assert reload["workflows_changed"] == ["slow"]
    assert "groups_restarted" not in reload  # "keep" did not restart


async def test_a_throttle_holds_across_a_reload(ws: Callable[..., Path]) -> None:
    root = ws(
        "senses:\n  t:\n    throttle: 2s\n",
        {"t": "import time\ndef compute(ctx):\n    return time.monotonic()\n"},
    )
    async with watched(root) as (kernel, recorder):
        kernel.trigger_sense("t")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "t"))
        save_by_rename(
            root / "nerve.yaml",
            "senses:\n  t:\n    throttle: 2s\nreflexes:\n  - sense: t\n    interval: 1h\n",
        )
        await wait_until(lambda: recorder.of(LogType.CONFIG_RELOAD))
        kernel.trigger_sense("t")
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "t")) == 2, timeout=10)
    first, second = (row.payload for row in recorder.of(LogType.SIGNAL, "t"))
    assert second - first >= 1.95  # the window of the compute before the reload still held


RELOAD_UNDER_LOAD = """
senses:
  tick: {{group: ticks}}
  slow: {{group: slow}}
  manual: {{group: manual}}
reflexes:
  - sense: tick
    interval: 100ms
workflows:
  sleeper: {{concurrency: {concurrency}}}
"""


async def test_a_reload_changing_one_workflow_limit_loses_no_trigger_tick_or_outcome(
    ws: Callable[..., Path],
) -> None:
    """Scheduling goes on through a reload: the interval keeps ticking, a trigger made while the
    reload is under way runs, and a compute in flight has its outcome logged."""
    slow = "import time\n\ndef compute(ctx):\n    print('slow begins', flush=True)\n    time.sleep(2)\n    return 'slow done'\n"
    root = ws(
        RELOAD_UNDER_LOAD.format(concurrency=1),
        {
            "tick": "def compute(ctx):\n    return 1\n",
            "slow": slow,
            "manual": "def compute(ctx):\n    return 'manual'\n",
        },
        workflows={"sleeper": SLOW.format(version="1")},
    )
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: len(recorder.computes_of("tick")) >= 3)
        kernel.trigger_sense("slow")
        await wait_until(lambda: any("slow begins" in line for _, line in recorder.output))
        reloaded = (root / "nerve.yaml").read_text().replace("concurrency: 1", "concurrency: 3")
        parsed = parse_nerve_config(reloaded)
        assert parsed.ok
        config = parsed.value
        async with anyio.create_task_group() as group:
            group.start_soon(kernel.apply_config, config)
            await anyio.sleep(0.05)  # the reload has begun (it held everything for 2 s once)
            decision = kernel.trigger_sense("manual")
        assert decision is not None
        assert kernel.workflow_runners["sleeper"].config.concurrency == 3
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "slow"))
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "manual"))
        ticks_before = len(recorder.computes_of("tick"))
        await wait_until(lambda: len(recorder.computes_of("tick")) >= ticks_before + 3)
    [slow_signal] = recorder.of(LogType.SIGNAL, "slow")
    assert slow_signal.payload == "slow done"
    assert [o.kind for _, o in recorder.computes_of("slow")] == ["ok"]
    tick_times = [
        at
        for (name, _, _), at in zip(recorder.computes, recorder.compute_times, strict=True)
        if name == "tick"
    ]
    gaps = [later - earlier for earlier, later in itertools.pairwise(tick_times)]
    assert max(gaps) < 1.0, gaps  # the slow compute's 2 s never held the other senses' ticks


async def test_the_watcher_never_looks_at_data_and_sees_a_senses_folder_made_after_it_started(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    (root / "nerve.yaml").write_text("senses: {}\n")
    changes: list[set[Path]] = []

    async def changed(paths: set[Path]) -> None:
        changes.append(paths)

    watcher = FileWatcher(root, changed, debounce=0.1)
    async with anyio.create_task_group() as group:
        await group.start(watcher.run)
        for n in range(100):  # what every commit does to logs.db
            (root / "data" / "logs.db-wal").write_bytes(b"x" * n)
        (root / "senses" / "a").mkdir(parents=True)  # a folder the watcher did not know

        def seen() -> bool:
            return any(Path("senses/a/compute.py") in c for c in changes)

        for _ in range(10):  # saved again until seen: watching the new folder begins on a thread
            (root / "senses/a/compute.py").write_text("def compute(ctx):\n    return 1\n")
            with anyio.move_on_after(2):
                await wait_until(seen)
            if seen():
                break
        assert seen()
        group.cancel_scope.cancel()
    assert watcher.handler is not None
    assert watcher.handler.seen < 50  # data/ was never watched: 100 writes, a few events
