"""One state read model: `health` and `list-senses` render the same snapshot, and its figures
survive a reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType, parse_nerve_config
from nerve_daemon.senses.scheduler import Decision

from .conftest import SLEEPER, running, wait_until

pytestmark = pytest.mark.anyio

CONFIG = """
senses:
  a: {}
reflexes:
  - sense: a
    interval: 100ms
workflows:
  w: {concurrency: 1}
"""


async def test_health_and_sense_list_render_one_snapshot_whose_figures_survive_a_reload(
    ws: Callable[..., Path],
) -> None:
    root = ws(CONFIG, {"a": "def compute(ctx):\n    return 1\n"}, workflows={"w": SLEEPER})
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: kernel.state().senses[0].stats.computes >= 5)
        before = kernel.state()
        [sense] = before.senses
        assert sense.decisions[Decision.RAN] >= 5
        health = kernel.health()
        assert [(w.kind, w.name) for w in health.workers] == [
            (w.kind, w.name) for w in before.workers
        ]
        assert [w.name for w in before.workers] == ["fork-server", "default", "w"]
        [started] = [r.payload for r in recorder.of(LogType.WORKER_START) if "group" in r.payload]
        assert (started["group"], started["senses"]) == ("default", ["a"])
        [info] = kernel.list_senses()
        assert (info.name, info.group, info.state) == ("a", "default", "RUNNING")
        assert info.computes >= sense.stats.computes
        parsed = parse_nerve_config(CONFIG.replace("concurrency: 1", "concurrency: 4"))
        assert parsed.ok
        await kernel.apply_config(parsed.value)
        after = kernel.state()
        assert after.workflows[0].concurrency == 4
        [still] = after.senses
        assert still.stats.computes >= sense.stats.computes  # not reset by the reload
        assert still.decisions[Decision.RAN] >= sense.decisions[Decision.RAN]
