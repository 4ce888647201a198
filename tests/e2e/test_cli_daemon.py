"""The CLI against a running `nerve dev`, through the real socket."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from .test_dev import read_until, start_dev

pytestmark = pytest.mark.slow


def test_commands_that_need_the_daemon_exit_3_when_it_is_not_running(short_root: Path) -> None:
    for args in (
        ("status",),
        ("sense", "trigger", "a"),
        ("workflow", "trigger", "slow"),
        ("workflow", "cancel", "x"),
    ):
        result = run_nerve(*args, cwd=short_root)
        assert result.code == 3, args
        assert (
            result.err.strip()
            == f"error: nerve is not running in {short_root} (start it with `nerve dev`)"
        )
    listed = run_nerve("sense", "list", "--json", cwd=short_root)
    assert listed.code == 0
    assert json.loads(listed.out) == [
        {
            "name": "a",
            "group": "default",
            "schedule": "manual only",
            "throttle": "0s",
            "timeout": "30s",
        }
    ]


def test_status_trigger_list_and_cancel_against_a_running_daemon(short_root: Path) -> None:
    dev = start_dev(short_root)
    try:
        read_until(dev, "ready:")
        status = run_nerve("status", "--json", cwd=short_root)
        assert status.code == 0, status.err
        health = json.loads(status.out)
        assert health["pid"] == dev.pid
        assert {(w["name"], w["state"]) for w in health["workers"]} == {
            ("fork-server", "RUNNING"),
            ("default", "RUNNING"),
            ("slow", "RUNNING"),
        }
        assert (
            run_nerve("sense", "trigger", "a", cwd=short_root).out.strip()
            == "queued a compute of a"
        )
        read_until(dev, "signal            a")
        listed = json.loads(run_nerve("sense", "list", "--json", cwd=short_root).out)
        assert (listed[0]["name"], listed[0]["computes"]) == ("a", 1)
        started = json.loads(
            run_nerve("workflow", "trigger", "slow", "--prompt", "30", "--json", cwd=short_root).out
        )
        queued = json.loads(
            run_nerve(
                "workflow", "trigger", "slow", "--payload", '{"k": 1}', "--json", cwd=short_root
            ).out
        )
        assert (started["status"], queued["status"]) == ("started", "queued")
        cancelled = run_nerve("workflow", "cancel", started["runId"], cwd=short_root)
        assert cancelled.out.strip() == f"{started['runId']} cancelled"
        read_until(dev, f"run {queued['runId']} completed")
        again = run_nerve("workflow", "cancel", started["runId"], cwd=short_root)
        assert again.code == 1
        assert "already cancelled" in again.err
        unknown = run_nerve("sense", "trigger", "zzz", cwd=short_root)
        assert (unknown.code, unknown.err.strip()) == (1, 'error: no sense "zzz" in nerve.yaml')
        bad_payload = run_nerve("workflow", "trigger", "slow", "--payload", "{nope", cwd=short_root)
        assert bad_payload.code == 2
        # An idempotency key: the same key again is the same run, said so.
        keyed = ("workflow", "trigger", "slow", "--prompt", "0", "--key", "deploy-42")
        first = json.loads(run_nerve(*keyed, "--json", cwd=short_root).out)
        second = run_nerve(*keyed, cwd=short_root)
        assert first["existing"] is False
        assert second.out.strip().startswith(f"{first['runId']} ")
        assert second.out.strip().endswith("(launched before with this key)")
        delayed = run_nerve(*keyed, "--in", "10m", cwd=short_root)
        assert delayed.code == 2
        assert "a delayed trigger takes no key" in delayed.err
        assert "Traceback" not in delayed.err
    finally:
        dev.send_signal(signal.SIGINT)
        dev.communicate(timeout=30)
    assert dev.returncode == 0
    assert not (short_root / "nerve.sock").exists()


def test_the_payload_form_of_a_trigger_passes_the_prompt_and_round_cap_and_status_names_senses(
    short_root: Path,
) -> None:
    """The seed's form: `--payload '{"prompt": …, "maxRounds": …}'`; the options win over it,
    the other fields stay the run's payload."""
    from nerve_store import LogStore

    dev = start_dev(short_root)
    try:
        read_until(dev, "ready:")
        status = run_nerve("status", cwd=short_root)
        assert "senses: a" in status.out
        payload = '{"prompt": "0.1", "maxRounds": 50, "ticket": 7}'
        first = json.loads(
            run_nerve(
                "workflow", "trigger", "slow", "--payload", payload, "--json", cwd=short_root
            ).out
        )
        read_until(dev, f"run {first['runId']} completed")
        second = json.loads(
            run_nerve(
                "workflow",
                "trigger",
                "slow",
                "--payload",
                payload,
                "--prompt",
                "0",
                "--max-rounds",
                "3",
                "--json",
                cwd=short_root,
            ).out
        )
        read_until(dev, f"run {second['runId']} completed")
        for bad in (
            '{"maxRounds": 0}',
            '{"maxRounds": 1.5}',
            '{"prompt": 7}',
            '{"maxRounds": 9223372036854775808}',
        ):
            refused = run_nerve("workflow", "trigger", "slow", "--payload", bad, cwd=short_root)
            assert refused.code == 2, bad
            assert "--payload" in refused.err
            assert "Traceback" not in refused.err
    finally:
        dev.send_signal(signal.SIGINT)
        dev.communicate(timeout=30)
    with LogStore.open_readonly(short_root / "data/logs.db") as store:
        one, two = store.run(first["runId"]), store.run(second["runId"])
    assert one is not None
    assert two is not None
    assert (one.prompt, one.max_rounds, one.payload) == ("0.1", 50, {"ticket": 7})
    assert (two.prompt, two.max_rounds, two.payload) == ("0", 3, {"ticket": 7})
    log_text = (short_root / "logs/nerve.log").read_text()
    assert 'kernel.start kernel {"pid":' in log_text  # structured fields as JSON, not reprs
    assert "{'pid'" not in log_text


def test_status_shows_an_idle_workflow_without_a_worker_and_a_trigger_starts_one(
    short_root: Path,
) -> None:
    config = short_root / "nerve.yaml"
    config.write_text(config.read_text().replace("overflow: queue", "idle_after: 1s"))
    dev = start_dev(short_root)
    try:
        read_until(dev, "ready:")
        deadline = time.monotonic() + 30
        while True:  # its worker stops a second after its start
            health = json.loads(run_nerve("status", "--json", cwd=short_root).out)
            [slow] = [w for w in health["workers"] if w["name"] == "slow"]
            if slow["state"] == "IDLE" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (slow["state"], slow["pid"]) == ("IDLE", None)
        table = run_nerve("status", cwd=short_root).out
        assert any(line.split()[:3] == ["slow", "workflow", "IDLE"] for line in table.splitlines())
        started = json.loads(
            run_nerve("workflow", "trigger", "slow", "--prompt", "0", "--json", cwd=short_root).out
        )
        assert started["status"] == "started"
        read_until(dev, f"run {started['runId']} completed")
    finally:
        dev.send_signal(signal.SIGINT)
        dev.communicate(timeout=30)
    assert dev.returncode == 0


def test_reload_plan_then_reload_with_reload_manual_through_the_cli(short_root: Path) -> None:
    """`reload: manual`: a changed nerve.yaml waits; `nerve reload --plan` says what a reload
    would do and changes nothing; `nerve reload` applies it; both in text and `--json`."""
    config = short_root / "nerve.yaml"
    config.write_text("reload: manual\n" + config.read_text())
    dev = start_dev(short_root)
    try:
        read_until(dev, "ready:")
        config.write_text(config.read_text().replace("  a: {}\n", "  a: {}\n  b: {}\n"))
        (short_root / "senses/b").mkdir()
        (short_root / "senses/b/compute.py").write_text("def compute(ctx):\n    return 2\n")

        planned = run_nerve("reload", "--plan", "--json", cwd=short_root)
        assert planned.code == 0, planned.err
        plan = json.loads(planned.out)
        assert (plan["applied"], plan["plan"]["senses"]["added"]) == (False, ["b"])
        text = run_nerve("reload", "--plan", cwd=short_root)
        assert text.code == 0, text.err
        assert text.out.startswith("a reload would:\n"), text.out
        names = json.loads(run_nerve("status", "--json", cwd=short_root).out)["senseNames"]
        assert names == ["a"]  # nothing changed yet

        applied = run_nerve("reload", "--json", cwd=short_root)
        assert applied.code == 0, applied.err
        assert json.loads(applied.out)["applied"] is True
        names = json.loads(run_nerve("status", "--json", cwd=short_root).out)["senseNames"]
        assert names == ["a", "b"]
        again = run_nerve("reload", cwd=short_root)
        assert again.out == "nothing to reload: the daemon runs the workspace as it is\n"
    finally:
        dev.send_signal(signal.SIGINT)
        dev.communicate(timeout=30)
    assert dev.returncode == 0
