"""`ctx.limit(name, rate)`: one window per name in the kernel, shared by every sense group and
workflow worker, so calls under one name never exceed its rate however many workers make them,
and calls go as soon as the rate allows (the limit holds, it does not over-throttle)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import (
    LimitGrant,
    LimitRequest,
    LogType,
    RunStatus,
    decode_worker_message,
    encode_worker_message,
)
from nerve_daemon.timing.limits import MAX_NAMES, RateLimits

from .conftest import running, wait_until
from .test_stalls import run_of

pytestmark = pytest.mark.anyio

CALLS = 6  # per caller
COUNT, PERIOD = 5, 1.0  # the rate: 5/1s

# Each caller appends the monotonic instant it was let through to a file of its own.
CALLER = """
import time
from pathlib import Path

def calls(ctx, where):
    for _ in range({calls}):
        ctx.limit("api", "{count}/1s")
        with open(where, "a") as out:
            out.write(f"{{time.monotonic()}}\\n")
"""

SENSE = (
    CALLER
    + """
def compute(ctx):
    calls(ctx, Path(__file__).parent.parent.parent / ("times-" + ctx.name))
"""
)

WORKFLOW = """
import time
from pathlib import Path
from nerve_core.workflow import END, START, WorkflowDefinition

ROOT = Path(__file__).parent.parent.parent

def moderator(thread):
    return {{START: "blocking", "blocking": "waiting"}}.get(thread[-1].role, END)

def blocking(ctx):
    for _ in range({calls}):
        ctx.limit("api", "{count}/1s")
        with open(ROOT / "times-blocking", "a") as out:
            out.write(f"{{time.monotonic()}}\\n")

async def waiting(ctx):
    try:
        ctx.limit("api", "{count}/1s")
    except RuntimeError as exc:
        (ROOT / "refused").write_text(str(exc))
    for _ in range({calls}):
        await ctx.limit_async("api", "{count}/1s")
        with open(ROOT / "times-waiting", "a") as out:
            out.write(f"{{time.monotonic()}}\\n")

definition = WorkflowDefinition(moderator=moderator, roles={{"blocking": blocking, "waiting": waiting}})
"""


def times(root: Path, caller: str) -> list[float]:
    path = root / f"times-{caller}"
    return [float(line) for line in path.read_text().split()] if path.exists() else []


async def test_one_rate_holds_across_two_groups_and_a_workflow(ws: Callable[..., Path]) -> None:
    config = """
    senses:
      a: {group: one}
      b: {group: two}
      c: {group: two}
    workflows:
      w: {}
    """
    code = SENSE.format(calls=CALLS, count=COUNT)
    root = ws(
        config,
        {"a": code, "b": code, "c": code},
        workflows={"w": WORKFLOW.format(calls=CALLS, count=COUNT)},
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("a")
        kernel.trigger_sense("b")
        kernel.trigger_sense("c")  # sent to group two's worker while b waits for its grants
        run_id, _ = await kernel.trigger_workflow("w", "go")
        callers = ("a", "b", "c", "blocking", "waiting")
        await wait_until(lambda: all(len(times(root, c)) == CALLS for c in callers), timeout=60)
        await wait_until(lambda: run_of(root, run_id)[0] is RunStatus.COMPLETED)
        health = kernel.health()
    assert "limit_async" in (root / "refused").read_text()  # a blocking limit on the loop
    assert not recorder.of(LogType.COMPUTE_ERROR)
    every = sorted(t for caller in callers for t in times(root, caller))
    # No window of PERIOD holds more than COUNT calls (a little slack for the hop from the
    # kernel's grant to the caller's clock read)...
    closest = min(every[i + COUNT] - every[i] for i in range(len(every) - COUNT))
    assert closest >= PERIOD - 0.05, f"{COUNT + 1} calls within {closest:.3f}s"
    # ...and the calls went as soon as the rate let them: the last one about when it allows.
    least = (math.ceil(len(every) / COUNT) - 1) * PERIOD
    assert every[-1] - every[0] < least + 2.0, f"{len(every)} calls took {every[-1] - every[0]}"
    assert health.rate_limits["api"]["rate"] == "5/1s"


async def test_a_bad_rate_is_the_computes_error_and_the_daemon_goes_on(
    ws: Callable[..., Path],
) -> None:
    bad = """
def compute(ctx):
    ctx.limit("api", "30 a minute")
"""
    good = """
def compute(ctx):
    ctx.limit("api", "100/s")
    return {"went": True}
"""
    root = ws("senses:\n  bad: {}\n  good: {}\n", {"bad": bad, "good": good})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("bad")
        await wait_until(lambda: recorder.of(LogType.COMPUTE_ERROR, "bad"))
        kernel.trigger_sense("good")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "good"))
    error = recorder.of(LogType.COMPUTE_ERROR, "bad")[0].payload["error"]
    assert (
        error == "ValueError: invalid rate '30 a minute': expected calls/period, e.g. 30/m or 10/2s"
    )


# -- the window on a stepped clock ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_window_grants_the_instant_its_oldest_call_leaves_it() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    assert [limits.reserve("api", 3, 10.0) for _ in range(3)] == [1000.0] * 3
    # The fourth waits for the first to leave the window; the fifth and sixth, for the next two.
    assert [limits.reserve("api", 3, 10.0) for _ in range(3)] == [1010.0] * 3
    assert limits.reserve("api", 3, 10.0) == 1020.0
    clock.now = 1030.0  # every grant has left its window: at once again
    assert limits.reserve("api", 3, 10.0) == 1030.0


def test_no_window_holds_more_than_the_count_where_a_token_bucket_would_let_twice_through() -> None:
    # Calls arrive steadily, then in a burst at the end of a quiet window: a bucket refilled over
    # the quiet time lets 2 × count - 1 through within one period; the window never does.
    clock = Clock()
    limits = RateLimits(clock)
    granted = []
    for step in range(40):
        clock.now = 1000.0 + step * 0.7
        granted += [limits.reserve("api", 4, 5.0) for _ in range(1 + step % 5)]
    granted.sort()
    assert all(granted[i + 4] - granted[i] >= 5.0 for i in range(len(granted) - 4))
    assert all(granted[i] <= granted[i + 1] for i in range(len(granted) - 1))


def test_another_name_has_its_own_window_and_a_new_rate_applies_at_once() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    assert limits.reserve("a", 1, 10.0) == 1000.0
    assert limits.reserve("b", 1, 10.0) == 1000.0  # not held back by "a"
    assert limits.reserve("a", 1, 10.0) == 1010.0
    # Lowered to one a minute: the next waits a minute after the last grant.
    assert limits.reserve("a", 1, 60.0) == 1070.0
    described = limits.describe()
    # One call gone (at 1000), two granted ahead (1010, 1070); a new one would go at 1130.
    assert described["a"] == {"rate": "1/1m", "inWindow": 1, "nextFreeInS": 130.0, "waiting": 2}
    assert described["b"]["nextFreeInS"] == 10.0


def test_who_waits_for_a_grant_is_known_until_its_instant() -> None:
    clock = Clock()
    limits = RateLimits(clock, wall=lambda: 1_700_000_000.0 + clock.now)
    assert limits.grant(LimitRequest(1, "api", 1, 30.0, of="fetcher")).at == 1000.0
    assert limits.waiting_of("fetcher") is None  # it went at once
    assert limits.grant(LimitRequest(2, "api", 1, 30.0, of="poller")).at == 1030.0
    assert limits.waiting_of("poller") == ("api", (1_700_000_000 + 1030) * 1000)
    assert limits.describe()["api"]["waiting"] == 1
    clock.now = 1030.0  # its instant came: it waits no more
    assert limits.waiting_of("poller") is None
    assert limits.describe()["api"]["waiting"] == 0


@pytest.mark.parametrize(
    ("name", "count", "period", "error"),
    [
        ("", 1, 1.0, "a rate limit name has 1 to 200 characters"),
        ("x" * 201, 1, 1.0, "a rate limit name has 1 to 200 characters"),
        ("api", 0, 1.0, "a rate's count is a whole number from 1 to 100000, got 0"),
        ("api", 10**9, 1.0, "a rate's count is a whole number from 1 to 100000, got 1000000000"),
        ("api", True, 1.0, "a rate's count is a whole number from 1 to 100000, got True"),
        ("api", "5", 1.0, "a rate's count is a whole number from 1 to 100000, got '5'"),
        ("api", 5, 0.0, "a rate's period is a duration longer than zero, got 0.0"),
        ("api", 5, math.inf, "a rate's period is a duration longer than zero, got inf"),
        ("api", 5, "1s", "a rate's period is a duration longer than zero, got '1s'"),
    ],
)
def test_a_request_no_worker_of_ours_sends_is_refused_and_kept_out(
    name: str, count: object, period: object, error: str
) -> None:
    limits = RateLimits(Clock())
    grant = limits.grant(LimitRequest(7, name, count, period))  # type: ignore[arg-type]
    assert grant == LimitGrant(7, 0.0, error)
    assert limits.describe() == {}


def test_names_are_bounded_and_idle_ones_make_room() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    for number in range(MAX_NAMES):
        assert limits.grant(LimitRequest(number, f"n{number}", 1, 10.0)).error is None
    refused = limits.grant(LimitRequest(0, "one-more", 1, 10.0))
    assert refused.error == f"more than {MAX_NAMES} rate limit names are in use"
    assert limits.grant(LimitRequest(0, "n5", 1, 10.0)).at == 1010.0  # a name in use goes on
    clock.now = 1010.0  # the other names' grants have left their windows: they are forgotten
    assert limits.grant(LimitRequest(0, "one-more", 1, 10.0)) == LimitGrant(0, 1010.0)
    assert sorted(limits.describe()) == ["n5", "one-more"]


@pytest.mark.parametrize(
    "message",
    [
        LimitRequest(3, "github", 30, 60.0, "fetcher"),
        LimitGrant(3, 12.5),
        LimitGrant(4, 0.0, "no"),
    ],
)
def test_limit_messages_round_trip(message: LimitRequest | LimitGrant) -> None:
    decoded = decode_worker_message(encode_worker_message(message))
    assert decoded.ok
    assert decoded.value == message
