"""Values at and past the edges of what nerve stores, through every way in: the socket, a
sense's return, a sense's `ctx.log`. Each gets a clear answer or a row saying why, and the same
daemon goes on serving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType

from ..daemon.conftest import running, wait_until
from .conftest import ECHO, RETURN_ONE, Figure, ask, query, wait_for

pytestmark = pytest.mark.slow


TRIGGER = b'{"type":"trigger-workflow","workflow":"echo"'
EDGES = {
    # maxRounds one past SQLite's int64 (orjson reads it as an unsigned 64-bit integer)
    TRIGGER + b',"maxRounds":9223372036854775808}': "bad_request",
    TRIGGER + b',"maxRounds":18446744073709551615}': "bad_request",
    TRIGGER + b',"maxRounds":1000001}': "bad_request",
    TRIGGER + b',"maxRounds":1e30}': "bad_request",
    TRIGGER + b',"maxRounds":' + b"9" * 5000 + b"}": "bad_request",
    TRIGGER + b',"maxRounds":1.5}': "bad_request",
    TRIGGER + b',"maxRounds":NaN}': "bad_request",
    b'{"type":"health","id":9223372036854775808}': "bad_request",
    b'{"type":"health","id":"' + b"i" * 300 + b'"}': "bad_request",
    # within the bounds: accepted
    TRIGGER + b',"maxRounds":1000000,"id":-9223372036854775807}': "ok",
    TRIGGER
    + b',"payload":{"n":18446744073709551615,"deep":'
    + b"[" * 200
    + b"]" * 200
    + b"}}": "ok",
    TRIGGER + b',"prompt":"' + b"p" * 900_000 + b'"}': "ok",
}


def test_numbers_past_64_bits_and_other_edges_through_the_socket_are_answered_and_the_daemon_lives(
    daemon: Path, figure: Figure
) -> None:
    pid = (daemon / "nerve.pid").read_text().strip()
    for line, expected in EDGES.items():
        answer = ask(daemon, line)
        if expected == "ok":
            assert answer["ok"] is True, (line[:120], answer)
        else:
            assert answer["ok"] is False, (line[:120], answer)
            error = answer["error"]
            assert isinstance(error, dict)
            assert error["code"] == expected, (line[:120], answer)
    health = ask(daemon, b'{"type":"health","id":7}')
    assert health["ok"] is True
    assert health["id"] == 7
    assert str(health["pid"]) == pid  # the same daemon, never restarted
    accepted = sum(1 for expected in EDGES.values() if expected == "ok")
    wait_for(
        lambda: (
            query(daemon, "SELECT count(*) FROM workflow_runs WHERE status = 'completed'")
            == [(accepted,)]
        ),
        timeout=60,
    )
    figure(
        "numbers past 64 bits, over-long ids, huge prompts through the socket",
        f"{len(EDGES)} edge lines, each answered as expected; {accepted} runs completed; "
        "the same daemon serves on",
    )


HOSTILE = {
    "rounds-past-int64": "def compute(ctx):\n    return {'workflow': 'echo|99999999999999999999|hi'}\n",
    "rounds-5000-digits": "def compute(ctx):\n    return {'workflow': 'echo|' + '9' * 5000 + '|hi'}\n",
    "log-huge-int": "def compute(ctx):\n    ctx.log('info', 'big', n=2**70, fine=1)\n    return None\n",
}


@pytest.mark.anyio
async def test_a_sense_asking_for_the_impossible_gets_a_row_saying_why_and_the_kernel_goes_on(
    ws: Callable[..., Path],
) -> None:
    config = "senses:\n" + "".join(f"  {name}: {{}}\n" for name in [*HOSTILE, "fine"])
    config += "reflexes:\n  - sense: fine\n    interval: 100ms\nworkflows:\n  echo: {}\n"
    root = ws(config, {**HOSTILE, "fine": RETURN_ONE}, workflows={"echo": ECHO})
    async with running(root) as (kernel, recorder):
        for name in HOSTILE:
            kernel.trigger_sense(name)
        await wait_until(
            lambda: (
                len(recorder.of(LogType.DIRECTIVE_INVALID)) == 2
                and recorder.of(LogType.SENSE_LOG, "log-huge-int")
            )
        )
        before = len(recorder.of(LogType.SIGNAL, "fine"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "fine")) >= before + 3)
        assert not kernel.stopped.is_set()
    for name in ("rounds-past-int64", "rounds-5000-digits"):
        [row] = recorder.of(LogType.DIRECTIVE_INVALID, name)
        assert "maxRounds" in row.payload["reason"]
        assert "over 1000000" in row.payload["reason"] or "not a positive" in row.payload["reason"]
    assert not recorder.of(LogType.WORKFLOW_LAUNCH)
    [logged] = recorder.of(LogType.SENSE_LOG, "log-huge-int")
    assert logged.payload["fields"] == {"n": str(2**70), "fine": 1}
