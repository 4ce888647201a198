"""Durations as nerve.yaml writes them: `500ms`, `10s`, `1m30s`, `2h`, `7d`, or a bare number of
seconds. Parsed to float seconds, the unit anyio and the scheduler work in."""

from __future__ import annotations

import math
import re

from ._result import Result, err, ok

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RANK = {unit: rank for rank, unit in enumerate(_UNIT_SECONDS)}  # smallest unit first
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d))+")
_BARE = re.compile(r"\d+(?:\.\d+)?")
MAX_DURATION_S = 10 * 365 * 86400.0  # ten years: longer is a typo, and would overflow timers


def parse_duration(value: object) -> Result[float, str]:
    parsed = _parse(value)
    if parsed.ok and parsed.value > MAX_DURATION_S:
        return err(f"invalid duration {_show(value)}: must be at most 10 years")
    return parsed


def _parse(value: object) -> Result[float, str]:
    """Seconds for `value`, or a message saying why it is not a duration.

    A unit part may appear more than once only in decreasing order (`1h30m`, not `30m1h`), so a
    typo like `1m1m` is caught rather than summed.
    """
    if isinstance(value, bool):
        return err(
            f"invalid duration {_show(value)}: expected a number of seconds or e.g. 30s, 1m30s"
        )
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            return err(f"invalid duration {_show(value)}: must be a finite number >= 0")
        return ok(float(value))
    if not isinstance(value, str):
        return err(
            f"invalid duration {_show(value)}: expected a number of seconds or e.g. 30s, 1m30s"
        )
    text = value.strip()
    if _BARE.fullmatch(text):
        return ok(float(text))
    if not _WHOLE.fullmatch(text):
        return err(f"invalid duration {_show(value)}: expected e.g. 500ms, 30s, 1m30s, 2h, 1d")
    total = 0.0
    last_rank = len(_RANK)
    for number, unit in _PART.findall(text):
        rank = _RANK[unit]
        if rank >= last_rank:
            return err(f"invalid duration {_show(value)}: units must go from largest to smallest")
        last_rank = rank
        total += int(number) * _UNIT_SECONDS[unit]
    return ok(total)


def format_duration(seconds: float) -> str:
    """The shortest nerve.yaml spelling of `seconds` (`90` → `1m30s`, `0.25` → `250ms`)."""
    total_ms = round(seconds * 1000)
    if total_ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
