from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from nerve_core import format_duration, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1m30s", 90.0),
        ("1h1m1s1ms", 3661.001),
        ("45", 45.0),
        ("0.25", 0.25),
        (" 30s ", 30.0),
        (30, 30.0),
        (1.5, 1.5),
        ("0s", 0.0),
    ],
)
def test_valid_durations_parse_to_seconds(text: object, seconds: float) -> None:
    parsed = parse_duration(text)
    assert parsed.ok
    assert parsed.value == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["ten", "", "10x", "1.5s", "-5", "s", "m1", "10 s", "1m1m", "30s1m", "1s500", True, None, [1]],
)
def test_invalid_durations_say_why(text: object) -> None:
    parsed = parse_duration(text)
    assert not parsed.ok
    assert parsed.error.startswith("invalid duration")


def test_negative_and_infinite_numbers_are_rejected() -> None:
    assert not parse_duration(-1).ok
    assert not parse_duration(float("inf")).ok
    assert not parse_duration(float("nan")).ok


@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_round_trips_whole_milliseconds(ms: int) -> None:
    parsed = parse_duration(format_duration(ms / 1000))
    assert parsed.ok
    assert round(parsed.value * 1000) == ms


@given(st.text(max_size=30) | st.integers() | st.floats() | st.none() | st.booleans())
def test_parse_duration_never_raises(value: object) -> None:
    result = parse_duration(value)
    assert result.ok or result.error.startswith("invalid duration")


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("30/m", (30, 60.0)),
        ("10/2s", (10, 2.0)),
        (" 5 / 1m30s ", (5, 90.0)),
        ("1/d", (1, 86400.0)),
        ("100000/h", (100_000, 3600.0)),
        ("4/0.5", (4, 0.5)),
    ],
)
def test_rates_parse_to_calls_and_a_window(text: str, rate: tuple[int, float]) -> None:
    parsed = parse_rate(text)
    assert parsed.ok, parsed
    assert parsed.value == rate


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (30, "expected calls/period, e.g. 30/m or 10/2s"),
        ("30", "expected calls/period, e.g. 30/m or 10/2s"),
        ("1/2/3", "expected calls/period, e.g. 30/m or 10/2s"),
        ("0/m", "the count is a whole number from 1 to 100000"),
        ("100001/m", "the count is a whole number from 1 to 100000"),
        ("-1/m", "the count is a whole number from 1 to 100000"),
        ("1.5/m", "the count is a whole number from 1 to 100000"),
        ("5/min", "the period is a duration such as s, m, 2s or 1h"),
        ("5/0s", "the period must be longer than zero"),
    ],
)
def test_a_bad_rate_says_what_is_wrong(text: object, error: str) -> None:
    parsed = parse_rate(text)
    assert not parsed.ok
    assert parsed.error == f"invalid rate {text!r}: {error}"
