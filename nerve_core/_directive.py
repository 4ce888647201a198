"""What a sense's return means: nothing, a signal, or a workflow launch.

    None                                     → nothing
    {"workflow": "name|maxRounds|prompt", …} → a launch, no signal
    {"workflow": None or "", …}              → a signal, payload without the key
    {"workflow": <anything invalid>, …}      → a signal, payload without the key, and the reason
    anything else                            → a signal with that payload

Only the first two `|` delimit a directive: the rest, `|` included, is the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ._fields import MAX_ROUNDS
from ._result import Result, err, ok
from ._workspace import check_name

DIRECTIVE_KEY = "workflow"
_ROUNDS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class WorkflowDirective:
    workflow_name: str
    max_rounds: int
    prompt: str


class RouteKind(StrEnum):
    NONE = "none"
    SIGNAL = "signal"
    LAUNCH = "launch"


@dataclass(frozen=True, slots=True)
class ComputeRoute:
    """Where a compute's return goes. `invalid_directive` says why a `workflow` key was not a
    launch, for the `directive.invalid` log row."""

    kind: RouteKind
    payload: Any = None
    launch: WorkflowDirective | None = None
    invalid_directive: str | None = None


def parse_sense_workflow_directive(text: object) -> Result[WorkflowDirective, str]:
    """Parse `name|maxRounds|prompt`; the error says what is wrong with it."""
    if not isinstance(text, str):
        return err(f"a workflow directive must be a string, got {type(text).__name__}")
    parts = text.split("|", 2)
    if len(parts) != 3:
        return err(f'invalid workflow directive "{_clip(text)}": expected "name|maxRounds|prompt"')
    name, rounds, prompt = parts
    checked = check_name(name, "workflow name")
    if not checked.ok:
        return err(f"invalid workflow directive: {checked.error}")
    if not _ROUNDS.fullmatch(rounds) or not rounds.strip("0"):
        return err(
            f'invalid workflow directive: maxRounds "{_clip(rounds)}" is not a positive integer'
        )
    # Digits are counted before any conversion: int() refuses strings past 4,300 digits.
    if len(rounds.lstrip("0")) > len(str(MAX_ROUNDS)) or int(rounds) > MAX_ROUNDS:
        return err(f"invalid workflow directive: maxRounds {_clip(rounds)} is over {MAX_ROUNDS}")
    return ok(WorkflowDirective(workflow_name=name, max_rounds=int(rounds), prompt=prompt))


def route_sense_compute_output(value: Any) -> ComputeRoute:
    """Route a compute's (JSON-serialisable) return value; see the module docstring."""
    if value is None:
        return ComputeRoute(RouteKind.NONE)
    if not isinstance(value, dict) or DIRECTIVE_KEY not in value:
        return ComputeRoute(RouteKind.SIGNAL, payload=value)
    directive = value[DIRECTIVE_KEY]
    rest = {key: item for key, item in value.items() if key != DIRECTIVE_KEY}
    if directive is None or directive == "":
        return ComputeRoute(RouteKind.SIGNAL, payload=rest)
    parsed = parse_sense_workflow_directive(directive)
    if not parsed.ok:
        return ComputeRoute(RouteKind.SIGNAL, payload=rest, invalid_directive=parsed.error)
    return ComputeRoute(RouteKind.LAUNCH, payload=rest, launch=parsed.value)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
