"""Rates as `ctx.limit()` takes them: `30/m`, `10/2s`, `1000/h`, `5/1m30s`: at most that many
calls in any window of that length."""

from __future__ import annotations

from ._durations import parse_duration
from ._result import Result, err, ok

MAX_RATE_COUNT = 100_000  # calls a window: more is a typo, and the kernel keeps one time per call


def parse_rate(value: object) -> Result[tuple[int, float], str]:
    """(calls, window seconds) for `value`, or a message saying why it is not a rate."""
    if not isinstance(value, str) or value.count("/") != 1:
        return err(f"invalid rate {value!r}: expected calls/period, e.g. 30/m or 10/2s")
    count_text, period_text = (part.strip() for part in value.split("/"))
    if not count_text.isdecimal() or not 1 <= int(count_text) <= MAX_RATE_COUNT:
        return err(
            f"invalid rate {value!r}: the count is a whole number from 1 to {MAX_RATE_COUNT}"
        )
    if period_text.isalpha():  # `30/m`: one of the unit
        period_text = "1" + period_text
    period = parse_duration(period_text)
    if not period.ok:
        return err(f"invalid rate {value!r}: the period is a duration such as s, m, 2s or 1h")
    if period.value <= 0:
        return err(f"invalid rate {value!r}: the period must be longer than zero")
    return ok((int(count_text), period.value))
