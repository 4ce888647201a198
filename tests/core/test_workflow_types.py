from __future__ import annotations

from typing import Any

import pytest

from nerve_core import END, START, RunStatus, WorkflowDefinition, WorkflowMessage
from nerve_core.errors import UserModuleError


def moderator(thread: Any) -> str:
    return END


def role(ctx: Any) -> str:
    return "done"


def test_a_definition_keeps_its_roles_read_only() -> None:
    definition = WorkflowDefinition(moderator=moderator, roles={"a": role})
    assert definition.roles["a"] is role
    with pytest.raises(TypeError):
        definition.roles["b"] = role  # type: ignore[index]


@pytest.mark.parametrize("name", [START, END, ""])
def test_role_names_cannot_be_the_start_or_end_markers(name: str) -> None:
    with pytest.raises(UserModuleError, match="invalid role name"):
        WorkflowDefinition(moderator=moderator, roles={name: role})


def test_a_definition_needs_a_callable_moderator_and_roles() -> None:
    with pytest.raises(UserModuleError, match="moderator"):
        WorkflowDefinition(moderator="planner", roles={"a": role})  # type: ignore[arg-type]
    with pytest.raises(UserModuleError, match="at least one role"):
        WorkflowDefinition(moderator=moderator, roles={})
    with pytest.raises(UserModuleError, match="must be a function"):
        WorkflowDefinition(moderator=moderator, roles={"a": 5})  # type: ignore[dict-item]


def test_start_and_end_are_distinct_from_any_valid_role_name() -> None:
    assert START != END
    assert WorkflowMessage(round=0, role=START, content="p", ts=0).role == START


def test_only_finished_runs_are_terminal() -> None:
    assert {status for status in RunStatus if status.terminal} == {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.INTERRUPTED,
        RunStatus.DROPPED,
        RunStatus.CANCELLED,
    }
