"""`reload-plan` says what a reload would do, and the reload then does that; with `reload: manual`
changed files wait for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType, RunStatus

from .conftest import SLEEPER, running, wait_until

pytestmark = pytest.mark.anyio

CONFIG = """
reload: manual
senses:
  a: {group: one}
  b: {group: two}
reflexes:
  - sense: a
    interval: 1h
  - sense: b
    interval: 1h
workflows:
  w: {}
  old: {}
"""
NEW = CONFIG.replace("  a: {group: one}", "  a: {group: one, throttle: 2s}\n  c: {group: three}")
NEW = NEW.replace(
    "  - sense: a\n    interval: 1h", "  - sense: a\n    interval: 1h\n    jitter: 1m"
)
NEW = NEW.replace("  old: {}\n", "")
ONE = "def compute(ctx):\n    return 1\n"


async def test_the_plan_names_what_the_reload_then_does(ws: Callable[..., Path]) -> None:
    root = ws(CONFIG, {"a": ONE, "b": ONE, "c": ONE}, workflows={"w": SLEEPER, "old": SLEEPER})
    async with running(root) as (kernel, recorder):
        in_flight, _ = await kernel.trigger_workflow("w", "1")
        (root / "nerve.yaml").write_text(NEW)
        (root / "workflows/w/workflow.py").write_text(SLEEPER + "\n# changed\n")
        await kernel.files_changed({Path("nerve.yaml"), Path("workflows/w/workflow.py")})
        assert recorder.of(LogType.CONFIG_RELOAD) == []  # reload: manual: nothing applied yet
        plan = kernel.reload_plan()
        applied = await kernel.reload()
        await wait_until(lambda: len(recorder.of(LogType.CONFIG_RELOAD)) == 2)
        await wait_until(lambda: "completed" in recorder.statuses(in_flight))
        after = kernel.reload_plan()
    assert applied == plan
    assert plan["config"] == {"valid": True, "errors": []}
    assert plan["groups"] == [
        {
            "group": "one",
            "action": "restart",
            "because": ["sense a changed (throttle 0s → 2s)"],
            "finishFirst": [],
        },
        {"group": "three", "action": "start"},
    ]
    assert plan["timers"] == [
        {"sense": "a", "action": "rebuilt", "every": ["1h"], "was": ["1h"]},
        {"sense": "b", "action": "kept", "every": ["1h"]},
    ]
    assert plan["workflows"] == [
        {
            "workflow": "w",
            "action": "drain",
            "because": ["workflows/w/ changed"],
            "interruptsIfStillRunningAfter": "30s",
            "runs": [in_flight],
        },
        {
            "workflow": "old",
            "action": "retire",
            "interruptsIfStillRunningAfter": "30s",
            "runs": [],
            "drops": [],
        },
    ]
    assert plan["senses"]["added"] == ["c"]
    assert plan["pending"] == ["workflows/w/workflow.py"]
    config_row, code_row = (row.payload for row in recorder.of(LogType.CONFIG_RELOAD))
    assert config_row["groups_restarted"] == ["one"]  # what the plan said
    assert config_row["groups_added"] == ["three"]
    assert config_row["workflows_removed"] == ["old"]
    assert code_row["workflows"] == ["w"]
    assert recorder.statuses(in_flight)[-1] == str(RunStatus.COMPLETED)  # drained, not cut
    assert after["empty"] is True
    assert after["pending"] == []


async def test_an_invalid_nerve_yaml_is_in_the_plan_and_the_running_config_stays(
    ws: Callable[..., Path],
) -> None:
    root = ws(CONFIG, {"a": ONE, "b": ONE}, workflows={"w": SLEEPER, "old": SLEEPER})
    async with running(root) as (kernel, recorder):
        (root / "nerve.yaml").write_text(CONFIG.replace("interval: 1h", "interval: soon", 1))
        plan = kernel.reload_plan()
        await kernel.reload()
        config = kernel.config
    assert plan["config"]["valid"] is False
    [error] = plan["config"]["errors"]
    assert error.startswith('nerve.yaml:8: reflexes[0].interval: invalid duration "soon"')
    assert plan["empty"] is True
    assert recorder.of(LogType.CONFIG_ERROR)  # the reload said so too
    assert config.reflexes[0].interval == 3600.0


async def test_the_plan_names_the_computes_in_flight_that_finish_before_their_worker_goes(
    ws: Callable[..., Path],
) -> None:
    busy = "import time\ndef compute(ctx):\n    print('busy', flush=True)\n    time.sleep(2)\n"
    root = ws("senses:\n  a: {}\n  b: {}\n", {"a": busy + "    return 1\n", "b": ONE})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("a")
        await wait_until(lambda: ("group:default", "busy") in recorder.output)
        (root / "nerve.yaml").write_text("senses:\n  a: {throttle: 1s}\n  b: {}\n")
        plan = kernel.reload_plan()
    [group] = plan["groups"]
    assert (group["group"], group["action"], group["finishFirst"]) == ("default", "restart", ["a"])
