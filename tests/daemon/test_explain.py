"""`explain` through the kernel: each reason code made by a real scenario and read back, a run
walked back through a chain of three senses to its interval tick, a signal's deliveries, and the
same answers from logs.db once the kernel has stopped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from nerve_core import LogType, NerveConfig, RunStatus, parse_nerve_config
from nerve_core.errors import NotFound
from nerve_daemon.explain import explain_run, explain_sense, explain_signal
from nerve_store import LogStore

from .conftest import SLEEPER, running, wait_until

pytestmark = pytest.mark.anyio

CHAIN = """
senses:
  a: {}
  b: {group: second}
  c: {}
reflexes:
  - sense: a
    interval: 300ms
  - sense: b
    on: [a]
  - sense: c
    on: [b]
workflows:
  w: {}
"""
# `a` signals on interval ticks only (its startup compute returns None), so the chain's root is
# a tick; `b` passes it on; `c` launches the run.
A = "def compute(ctx):\n    return {'n': 1} if ctx.trigger == 'interval' else None\n"
B = "def compute(ctx):\n    return {'from': ctx.signal.id}\n"
C = "def compute(ctx):\n    return {'workflow': 'w|2|0'}\n"


def offline(root: Path) -> tuple[NerveConfig, LogStore]:
    parsed = parse_nerve_config((root / "nerve.yaml").read_text())
    assert parsed.ok
    return parsed.value, LogStore.open_readonly(root / "data/logs.db")


async def test_a_run_is_walked_back_through_three_senses_to_its_interval_tick(
    ws: Callable[..., Path],
) -> None:
    root = ws(CHAIN, {"a": A, "b": B, "c": C}, workflows={"w": SLEEPER})
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: recorder.of(LogType.WORKFLOW_LAUNCH, "c"))
        launch = recorder.of(LogType.WORKFLOW_LAUNCH, "c")[0]
        run_id = launch.payload["run_id"]
        await wait_until(lambda: "completed" in recorder.statuses(run_id))
        live = await kernel.explain("run", run_id)
        signal_a = recorder.of(LogType.SIGNAL, "a")[0].ref_id
        assert signal_a is not None
        delivered = await kernel.explain("signal", signal_a)
    chain = live["chain"]
    assert [step["step"] for step in chain] == ["root", "signal", "signal", "launch"]
    assert chain[0] == {"step": "root", "kind": "interval", "what": "an interval tick"}
    assert [step["sense"] for step in chain[1:]] == ["a", "b", "c"]
    assert [step["kind"] for step in chain[1:]] == ["interval", "signal", "signal"]
    assert chain[1]["signal"] == signal_a
    assert chain[2]["forSignal"] == signal_a  # b computed for a's signal
    assert chain[3]["forSignal"] == chain[2]["signal"]  # c for b's
    assert chain[3]["trigger"] == launch.cause
    assert [change["status"] for change in live["history"]] == ["queued", "started", "completed"]
    assert (live["status"], live["origin"]) == ("completed", "c")
    assert delivered["subscribers"] == ["b"]
    [to_b] = delivered["deliveries"]
    assert to_b["summary"] == "computed for it: signal"
    assert [decision["reason"] for decision in to_b["decisions"]] == ["ran", "completed"]
    config, store = offline(root)  # the same walk from logs.db alone
    with store:
        assert explain_run(store, run_id)["chain"] == chain
        from_rows = explain_signal(config, store, signal_a, None)
    assert from_rows["deliveries"][0]["summary"] == "computed for it: signal"


async def test_why_not_names_the_throttle_window_and_when_it_ends(ws: Callable[..., Path]) -> None:
    root = ws("senses:\n  t: {throttle: 1h}\n", {"t": "def compute(ctx):\n    return 1\n"})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("t")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "t"))
        with anyio.fail_after(20):  # its compute is over, not only its row written
            while "running" in (await kernel.explain("sense", "t"))["now"]:
                await anyio.sleep(0.02)
        kernel.trigger_sense("t")  # inside the window: pending until it ends
        doc = await kernel.explain("sense", "t", why_not=True)
    assert doc["now"]["pending"]["reason"] == "throttled"
    until = doc["now"]["throttledUntil"]
    [ran] = [entry for entry in doc["recent"] if entry["reason"] == "ran"]
    assert abs(until - ran["at"] - 3_600_000) < 5_000  # an hour after the compute began
    assert doc["whyNot"]["sinceWhat"] == "its last compute"
    assert not any(s.startswith("it did compute") for s in doc["whyNot"]["answer"])
    assert any(s.startswith("throttled: trigger m-") for s in doc["whyNot"]["answer"])
    assert [entry["reason"] for entry in doc["recent"]] == ["throttled", "completed", "ran"]
    assert doc["counts"] == {"ran": 1, "completed": 1, "throttled": 1}


async def test_triggers_merged_behind_a_compute_are_explained_and_leave_a_row(
    ws: Callable[..., Path],
) -> None:
    busy = "import time\ndef compute(ctx):\n    print('busy', flush=True)\n    time.sleep(0.5)\n"
    root = ws("senses:\n  busy: {}\n", {"busy": busy + "    return 1\n"})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("busy")
        await wait_until(lambda: ("group:default", "busy") in recorder.output)
        for _ in range(3):  # the first waits behind the compute; each next takes its place
            kernel.trigger_sense("busy")
        doc = await kernel.explain("sense", "busy", why_not=True, since=0)
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "busy")) == 2)
    reasons = [entry["reason"] for entry in doc["recent"]][::-1]
    assert reasons == ["ran", "coalesced", "coalesced", "merged", "coalesced", "merged"]
    merged = [entry for entry in doc["recent"] if entry["reason"] == "merged"]
    pending = doc["now"]["pending"]["trigger"]
    assert merged[0]["into"] == pending  # the newest merged into the one pending now
    assert any("was merged into trigger" in s for s in doc["whyNot"]["answer"])
    [row] = recorder.of(LogType.SENSE_DECISION, "busy")  # one row per 10 s and reason
    assert (row.payload["decision"], row.payload["count"]) == ("merged", 1)
    assert row.cause == merged[-1]["trigger"]
    config, store = offline(root)
    with store:
        after = explain_sense(config, store, "busy", None, why_not=True, since=0)
    assert after["daemon"] == "not running"
    assert [r["type"] for r in after["rows"]][:3] == ["signal", "signal", "sense.decision"]
    assert any("was merged into trigger" in s for s in after["whyNot"]["answer"])


async def test_why_not_names_the_grace_period_while_it_holds_triggers(
    ws: Callable[..., Path],
) -> None:
    root = ws("senses:\n  g: {grace_period: 1h}\n", {"g": "def compute(ctx):\n    return 1\n"})
    async with running(root) as (kernel, _):
        kernel.trigger_sense("g")
        doc = await kernel.explain("sense", "g", why_not=True)
    assert doc["recent"][0]["reason"] == "held_by_grace"
    assert doc["whyNot"]["sinceWhat"] == "ever"
    assert any(s.startswith("held by the grace period until") for s in doc["whyNot"]["answer"])
    assert doc["now"]["heldUntil"] - doc["recent"][0]["at"] > 3_500_000


async def test_why_not_names_a_fatal_group_live_and_after_the_stop(
    ws: Callable[..., Path],
) -> None:
    from nerve_core import WorkerState

    config = "senses:\n  doomed: {group: bad}\nreflexes:\n  - sense: doomed\n    interval: 100ms\n"
    root = ws(config, {"doomed": "import os\nos._exit(1)\n"})
    async with running(root) as (kernel, _):
        await wait_until(lambda: kernel.groups["bad"].state is WorkerState.FATAL)
        kernel.trigger_sense("doomed")
        await wait_until(lambda: "skipped" in kernel.ledger.counts("doomed"))
        doc = await kernel.explain("sense", "doomed", why_not=True)
    assert doc["state"] == "FATAL"
    fatal = "its group bad's worker is FATAL (a crash loop)"
    assert any(s.startswith(fatal) for s in doc["whyNot"]["answer"])
    assert any("was skipped: the group's worker is FATAL" in s for s in doc["whyNot"]["answer"])
    nerve_config, store = offline(root)
    with store:
        after = explain_sense(nerve_config, store, "doomed", None, why_not=True)
        rows = store.logs(source="doomed", type=LogType.SENSE_DECISION)
    assert after["state"] == "FATAL"
    assert any(s.startswith(fatal) for s in after["whyNot"]["answer"])
    assert "skipped" in {row.payload["decision"] for row in rows}  # it lost work: a row


async def test_unknown_names_are_refused_and_a_cli_run_is_its_own_root(
    ws: Callable[..., Path],
) -> None:
    root = ws("senses:\n  a: {}\nworkflows:\n  w: {}\n", {"a": "def compute(ctx):\n    return 1\n"}, workflows={"w": SLEEPER})  # fmt: skip
    async with running(root) as (kernel, _):
        run_id, _status = await kernel.trigger_workflow("w", "0")
        await wait_until(lambda: _final(root, run_id) is RunStatus.COMPLETED)
        doc: dict[str, Any] = await kernel.explain("run", run_id)
        for what, name, message in [
            ("sense", "ghost", 'no sense "ghost" in nerve.yaml'),
            ("run", "nope", 'no workflow run "nope"'),
            ("signal", "nope", 'no signal "nope" in logs.db'),
        ]:
            with pytest.raises(NotFound, match=message):
                await kernel.explain(what, name)
    assert doc["chain"] == [
        {"step": "command", "what": "`nerve workflow trigger` (or the socket's request)"}
    ]


def _final(root: Path, run_id: str) -> RunStatus | None:
    with LogStore.open_readonly(root / "data/logs.db") as store:
        run = store.run(run_id)
    return None if run is None else run.status


async def test_a_pending_trigger_dropped_by_a_reload_leaves_a_row_that_says_so(
    ws: Callable[..., Path],
) -> None:
    config = "senses:\n  t: {throttle: 1h}\n  u: {}\n"
    one = "def compute(ctx):\n    return 1\n"
    root = ws(config, {"t": one, "u": one})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("t")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "t"))
        kernel.trigger_sense("t")  # pending until the hour is up
        pending = kernel.ledger.recent("t")[-1].trigger
        await kernel.apply_config(_config("senses:\n  u: {}\n"))
        await wait_until(lambda: recorder.of(LogType.SENSE_DECISION, "t"))
    [row] = recorder.of(LogType.SENSE_DECISION, "t")
    assert (row.payload["decision"], row.cause) == ("dropped", pending)
    assert kernel.ledger.counts("t")["dropped"] == 1


def _config(text: str) -> NerveConfig:
    parsed = parse_nerve_config(text)
    assert parsed.ok
    return parsed.value


async def test_failed_and_timed_out_computes_are_explained_and_counted(
    ws: Callable[..., Path],
) -> None:
    config = "senses:\n  raises: {}\n  hangs: {timeout: 500ms}\n"
    code = {
        "raises": "def compute(ctx):\n    raise KeyError('gone')\n",
        "hangs": "import time\ndef compute(ctx):\n    time.sleep(30)\n",
    }
    root = ws(config, code)
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("raises")
        kernel.trigger_sense("hangs")
        await wait_until(lambda: recorder.of(LogType.COMPUTE_TIMEOUT, "hangs"))
        await wait_until(lambda: recorder.of(LogType.COMPUTE_ERROR, "raises"))
        raised = await kernel.explain("sense", "raises")
        hung = await kernel.explain("sense", "hangs")
    assert [entry["reason"] for entry in raised["recent"]] == ["failed", "ran"]
    assert [entry["reason"] for entry in hung["recent"]] == ["timed_out", "ran"]
    assert (raised["counts"]["failed"], hung["counts"]["timed_out"]) == (1, 1)
    assert raised["rows"][0]["type"] == "compute.error"
    assert hung["rows"][0]["type"] == "compute.timeout"
    config_, store = offline(root)
    with store:  # from logs.db alone: the rows that say so
        after = explain_sense(config_, store, "hangs", None)
    assert [row["type"] for row in after["rows"]] == ["compute.timeout"]
