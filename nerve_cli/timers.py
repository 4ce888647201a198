"""Delayed triggers in words, for the trigger commands and `nerve timers`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nerve_core import TimerInfo


def due_in(ms: int) -> str:
    from nerve_core import format_duration

    seconds = ms / 1000 - time.time()
    return "due now" if seconds <= 0 else f"in {format_duration(round(seconds))}"


def timer_line(timer: TimerInfo) -> str:
    from .output import format_ts

    return (
        f"{timer.timer_id}: {timer.kind} {timer.target} at {format_ts(timer.due)}"
        f" ({due_in(timer.due)})"
    )
