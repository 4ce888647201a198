"""Time across `kill -9` of the daemon, driven as a user drives it (the CLI, logs.db read with
sqlite3): delayed triggers fire once after a restart, each `catch_up` policy does what it says
for the ticks missed while the daemon was down, and a throttle window outlives its kernel."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..cli.conftest import run_nerve
from .conftest import ECHO, Figure, daemon_workspace, kill_daemon, query, wait_for

TRIGGER = "def compute(ctx):\n    return ctx.trigger\n"


def nerve_json(root: Path, *args: str) -> Any:
    done = run_nerve(*args, "--json", cwd=root)
    assert done.code == 0, done.err
    return json.loads(done.out)


def signals_of(root: Path, sense: str, after: int = 0) -> list[tuple[int, str, str | None]]:
    """(id, what ctx.trigger said, cause) of the sense's signal rows after row `after`."""
    rows = query(
        root,
        "SELECT id, payload, cause FROM logs WHERE source = ? AND type = 'signal' AND id > ?"
        " ORDER BY id",
        sense,
        after,
    )
    return [(row_id, json.loads(payload), cause) for row_id, payload, cause in rows]


def test_delayed_triggers_survive_kill_9_fire_once_and_cancelled_ones_never(
    figure: Figure,
) -> None:
    config = "senses:\n  s: {}\nworkflows:\n  echo: {}\n"
    with daemon_workspace(config, {"s": TRIGGER}, {"echo": ECHO}) as root:
        assert run_nerve("start", cwd=root).code == 0
        began = time.time()
        sense = nerve_json(root, "sense", "trigger", "s", "--in", "10s")
        run = nerve_json(root, "workflow", "trigger", "echo", "--in", "10s", "--prompt", "later")
        kept = nerve_json(root, "sense", "trigger", "s", "--in", "1h")
        dropped = nerve_json(root, "sense", "trigger", "s", "--in", "2h")
        assert sense["due"] - round(began * 1000) in range(9_900, 12_000)
        cancel = run_nerve("timers", "cancel", dropped["timerId"], cwd=root)
        assert cancel.code == 0, cancel.err
        assert f"cancelled {dropped['timerId']}" in cancel.out
        listed = [timer["timerId"] for timer in nerve_json(root, "timers", "list")]
        assert sorted(listed[:2]) == sorted([sense["timerId"], run["timerId"]])
        assert listed[2:] == [kept["timerId"]]
        kill_daemon(root)  # acknowledged means committed: nothing was due yet
        assert run_nerve("start", cwd=root).code == 0
        wait_for(lambda: signals_of(root, "s"), 30)
        wait_for(
            lambda: (
                query(root, "SELECT status FROM workflow_runs WHERE cause = ?", run["timerId"])
                == [("completed",)]
            ),
            30,
        )
        fired_after = time.time() - began
        # Once each: the sense's compute ran for the delayed trigger (its id the cause).
        assert signals_of(root, "s") == [(signals_of(root, "s")[0][0], "delayed", sense["timerId"])]
        states = dict(query(root, "SELECT timer_id, status FROM timers"))
        assert states == {
            sense["timerId"]: "fired",
            run["timerId"]: "fired",
            kept["timerId"]: "pending",
            dropped["timerId"]: "cancelled",
        }
        assert [timer["timerId"] for timer in nerve_json(root, "timers", "list")] == [
            kept["timerId"]
        ]
        unknown = run_nerve("timers", "cancel", dropped["timerId"], cwd=root)
        assert unknown.code == 1
        assert f'no pending delayed trigger "{dropped["timerId"]}"' in unknown.err
        assert "Traceback" not in unknown.err
    figure(
        "delayed triggers across kill -9",
        f"2 due 10 s after their ack fired once each after a restart ({fired_after:.1f} s after"
        " the ack); a cancelled one never fired; one due in an hour kept pending",
    )


CATCH_UP = """
senses:
  never: {}
  newest: {}
  each: {}
reflexes:
  - sense: never
    interval: 1s
    catch_up: none
  - sense: newest
    interval: 1s
    catch_up: last
  - sense: each
    interval: 1s
    catch_up: all
"""


def test_each_catch_up_policy_after_kill_9_and_three_seconds_down(figure: Figure) -> None:
    senses = dict.fromkeys(("never", "newest", "each"), TRIGGER)
    with daemon_workspace(CATCH_UP, senses) as root:
        assert run_nerve("start", cwd=root).code == 0
        wait_for(lambda: all(len(signals_of(root, name)) >= 3 for name in senses), 30)
        kill_daemon(root)
        time.sleep(3.0)  # the downtime itself: the ticks of these seconds are missed
        last_row = query(root, "SELECT max(id) FROM logs")[0][0]
        assert run_nerve("start", cwd=root).code == 0
        wait_for(lambda: all(len(signals_of(root, name, last_row)) >= 2 for name in senses), 30)
        after = {name: [kind for _, kind, _ in signals_of(root, name, last_row)] for name in senses}
    # none: straight back on the grid; last: one compute for all missed; all: one each, first.
    assert after["never"][0] == "interval"
    assert "catch_up" not in after["never"]
    assert after["newest"][:2] == ["catch_up", "interval"]
    assert after["newest"].count("catch_up") == 1
    each = len(after["each"]) - after["each"][::-1].index("catch_up")  # up to the last catch-up
    assert after["each"][:each] == ["catch_up"] * each
    assert each >= 3  # at least the three seconds down
    assert "startup" not in after["never"] + after["newest"] + after["each"]
    figure(
        "catch_up after kill -9 and 3 s down (interval 1 s)",
        f"none: 0 catch-up computes; last: 1; all: {each} (one per missed tick)",
    )


def test_a_throttle_window_outlives_a_kill_9_of_its_daemon() -> None:
    config = "senses:\n  s: {throttle: 1m}\n"
    with daemon_workspace(config, {"s": TRIGGER}) as root:
        assert run_nerve("start", cwd=root).code == 0
        assert run_nerve("sense", "trigger", "s", cwd=root).code == 0
        wait_for(lambda: signals_of(root, "s"), 30)
        started = query(root, "SELECT at_ms FROM marks WHERE key = 'start s'")[0][0]
        kill_daemon(root)
        assert run_nerve("start", cwd=root).code == 0
        assert run_nerve("sense", "trigger", "s", cwd=root).code == 0
        explained = nerve_json(root, "explain", "sense", "s")
        now = explained["now"]
        assert now["pending"]["kind"] == "manual"
        # (the window's end passes through the monotonic clock: equal to within a millisecond)
        assert abs(now["throttledUntil"] - (started + 60_000)) <= 2
        assert explained["recent"][0]["reason"] == "throttled"
        assert len(signals_of(root, "s")) == 1  # not computed early by the restart
