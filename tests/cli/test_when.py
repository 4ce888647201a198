"""`--in` and `--at` of the trigger commands: when a delayed trigger is due."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
import typer

from nerve_cli.when import due_ms


def test_in_is_a_duration_from_now() -> None:
    before = time.time_ns() // 1_000_000
    due = due_ms("1h30m", None)
    assert due is not None
    assert due - before in range(5_400_000, 5_402_000)
    assert due_ms(None, None) is None  # a trigger now


def test_at_a_time_of_day_is_the_next_one_in_local_time() -> None:
    now = datetime.now().astimezone()
    soon = (now + timedelta(minutes=2)).replace(second=0, microsecond=0)
    due = due_ms(None, soon.strftime("%H:%M"))
    assert due == round(soon.timestamp() * 1000)
    past = (now - timedelta(minutes=2)).replace(second=0, microsecond=0)
    due = due_ms(None, past.strftime("%H:%M"))
    assert due == round((past + timedelta(days=1)).timestamp() * 1000)  # tomorrow's


def test_at_an_iso_time_keeps_its_offset() -> None:
    assert due_ms(None, "2027-01-15T08:00:00+00:00") == 1_800_000_000_000


@pytest.mark.parametrize(
    ("delay", "at", "message"),
    [
        ("10m", "09:00", "give --in or --at, not both"),
        ("ten", None, 'invalid duration "ten"'),
        (None, "25:00", "no such time of day: 25:00"),
        (None, "tomorrow", "not a time: 'tomorrow'"),
        (None, "1999-01-01T00:00", "is too far from now"),
    ],
)
def test_a_bad_when_is_refused_naming_the_option(
    delay: str | None, at: str | None, message: str
) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        due_ms(delay, at)
