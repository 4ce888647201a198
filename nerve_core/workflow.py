"""The workflow contract users write against.

A run is a thread of `WorkflowMessage`s. `thread[0]` is the start message (role `START`, content
the prompt). Each round the moderator looks at the thread and returns a role name or `END`; the
role runs with a `RoleContext` and its return becomes the next message::

    from nerve_core.workflow import END, START, WorkflowDefinition

    def moderator(thread):
        return {START: "planner", "planner": "executor"}.get(thread[-1].role, END)

    definition = WorkflowDefinition(moderator=moderator, roles={"planner": plan, "executor": run})

Running threads, persisting messages and recovering runs belong to the workflow manager and
worker in nerve_daemon.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from .errors import UserModuleError

START = "__start__"
END = "__end__"
DEFAULT_ENGINE_MAX_ROUNDS = 100


class RunStatus(StrEnum):
    """The lifecycle of a run: queued → started → one of the terminal states."""

    QUEUED = "queued"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CRASHED = "crashed"
    INTERRUPTED = "interrupted"
    DROPPED = "dropped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        # `crashed` is recorded when a worker dies, and the run is resumed from it.
        return self not in (RunStatus.QUEUED, RunStatus.STARTED, RunStatus.CRASHED)

    def can_become(self, new: RunStatus) -> bool:
        """Whether the lifecycle allows going from this status to `new`."""
        return new in _NEXT_STATUSES[self]


_NEXT_STATUSES: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.STARTED, RunStatus.DROPPED, RunStatus.CANCELLED}),
    RunStatus.STARTED: frozenset(
        {
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.CRASHED,
            RunStatus.INTERRUPTED,
            RunStatus.CANCELLED,
        }
    ),
    # A crashed run is resumed (started again), or ends if it cannot be.
    RunStatus.CRASHED: frozenset(
        {RunStatus.STARTED, RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.CANCELLED}
    ),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.INTERRUPTED: frozenset(),
    RunStatus.DROPPED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class WorkflowMessage:
    """One message of a thread: round 0 is START with the prompt, then one per role turn."""

    round: int
    role: str
    content: Any
    ts: int  # ms since the epoch, UTC


class RoleContext(Protocol):
    """What a role is given; see DESIGN.md, "Workflow contract"."""

    @property
    def run_id(self) -> str: ...

    @property
    def prompt(self) -> str: ...

    @property
    def thread(self) -> Sequence[WorkflowMessage]: ...

    @property
    def blobs(self) -> Any: ...

    def peer(self, sense: str) -> Any: ...

    def log(self, level: str, message: str, **fields: Any) -> None: ...

    def progress(self, fraction: float, note: str = "") -> None: ...

    def limit(self, name: str, rate: str) -> None: ...

    async def limit_async(self, name: str, rate: str) -> None: ...


Role = Callable[[RoleContext], Any | Awaitable[Any]]
Moderator = Callable[[Sequence[WorkflowMessage]], str | Awaitable[str]]


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """What `workflows/<name>/workflow.py` exports as `definition`."""

    moderator: Moderator
    roles: Mapping[str, Role] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.moderator):
            raise UserModuleError("WorkflowDefinition.moderator must be a function")
        if not isinstance(self.roles, Mapping) or not self.roles:
            raise UserModuleError(
                "WorkflowDefinition.roles must map at least one role name to a function"
            )
        for name, role in self.roles.items():
            if not isinstance(name, str) or not name or name in (START, END):
                raise UserModuleError(
                    f"invalid role name {name!r}: a non-empty string other than START and END"
                )
            if not callable(role):
                raise UserModuleError(
                    f"role {name!r} must be a function, got {type(role).__name__}"
                )
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))
