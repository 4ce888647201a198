from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from nerve_core import RouteKind, parse_sense_workflow_directive, route_sense_compute_output


def test_directive_has_name_rounds_and_prompt() -> None:
    parsed = parse_sense_workflow_directive("cleanup|10|Disk partition nearly full")
    assert parsed.ok
    assert parsed.value.workflow_name == "cleanup"
    assert parsed.value.max_rounds == 10
    assert parsed.value.prompt == "Disk partition nearly full"


def test_only_the_first_two_bars_delimit_the_prompt_keeps_the_rest() -> None:
    parsed = parse_sense_workflow_directive("triage|3|a|b||c")
    assert parsed.ok
    assert parsed.value.prompt == "a|b||c"


def test_an_empty_prompt_is_allowed() -> None:
    parsed = parse_sense_workflow_directive("cleanup|1|")
    assert parsed.ok
    assert parsed.value.prompt == ""


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("cleanup", "expected"),
        ("cleanup|10", "expected"),
        ("cleanup|0|x", "positive integer"),
        ("cleanup|-3|x", "positive integer"),
        ("cleanup|ten|x", "positive integer"),
        ("cleanup| 10|x", "positive integer"),
        ("cleanup|1.5|x", "positive integer"),
        ("Clean Up|10|x", "invalid workflow name"),
        ("../etc|10|x", "invalid workflow name"),
        ("|10|x", "invalid workflow name"),
    ],
)
def test_invalid_directives_say_why(text: str, fragment: str) -> None:
    parsed = parse_sense_workflow_directive(text)
    assert not parsed.ok
    assert fragment in parsed.error


def test_none_routes_to_nothing() -> None:
    assert route_sense_compute_output(None).kind is RouteKind.NONE


def test_a_valid_directive_routes_to_a_launch_without_a_signal() -> None:
    route = route_sense_compute_output({"workflow": "cleanup|10|full", "path": "/"})
    assert route.kind is RouteKind.LAUNCH
    assert route.launch is not None
    assert (route.launch.workflow_name, route.launch.max_rounds, route.launch.prompt) == (
        "cleanup",
        10,
        "full",
    )
    assert route.payload == {"path": "/"}
    assert route.invalid_directive is None


@pytest.mark.parametrize("empty", [None, ""])
def test_a_null_or_empty_directive_is_a_signal_without_the_key(empty: object) -> None:
    route = route_sense_compute_output({"workflow": empty, "percent": 93})
    assert route.kind is RouteKind.SIGNAL
    assert route.payload == {"percent": 93}
    assert route.invalid_directive is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            "cleanup|zero|x",
            'invalid workflow directive: maxRounds "zero" is not a positive integer',
        ),
        ("nope", 'invalid workflow directive "nope": expected "name|maxRounds|prompt"'),
        (5, "a workflow directive must be a string, got int"),
        (["cleanup|1|x"], "a workflow directive must be a string, got list"),
        ({"a": 1}, "a workflow directive must be a string, got dict"),
        (True, "a workflow directive must be a string, got bool"),
    ],
)
def test_an_invalid_directive_is_a_signal_without_the_key_and_a_reason(
    bad: object, reason: str
) -> None:
    route = route_sense_compute_output({"workflow": bad, "percent": 93})
    assert route.kind is RouteKind.SIGNAL
    assert route.payload == {"percent": 93}
    assert route.invalid_directive == reason
    assert route.launch is None


@pytest.mark.parametrize("value", [0, False, "", [], {}, "text", 3.5, [1, 2], {"a": None}])
def test_any_other_non_null_value_is_a_signal_with_that_payload(value: object) -> None:
    route = route_sense_compute_output(value)
    assert route.kind is RouteKind.SIGNAL
    assert route.payload == value
    assert route.launch is None


@given(
    name=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True),
    rounds=st.integers(min_value=1, max_value=10**6),
    prompt=st.text(),
)
def test_any_well_formed_directive_round_trips(name: str, rounds: int, prompt: str) -> None:
    parsed = parse_sense_workflow_directive(f"{name}|{rounds}|{prompt}")
    assert parsed.ok
    assert (parsed.value.workflow_name, parsed.value.max_rounds, parsed.value.prompt) == (
        name,
        rounds,
        prompt,
    )


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_routing_never_raises(value: object) -> None:
    route = route_sense_compute_output(value)
    assert route.kind in set(RouteKind)
