"""What becomes of a compute's outcome: log rows, signals, workflow launches, per-sense figures.

Every outcome is logged as DESIGN.md lists: `signal` (with its payload), `compute.error` (with
the traceback), `compute.timeout`, `compute.crash`, `workflow.launch`, and `directive.invalid`
when a `workflow` key was not a valid directive. A `None` return is counted but leaves no row.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nerve_core import (
    LogType,
    NerveConfig,
    RouteKind,
    RunStatus,
    Signal,
    WorkflowDirective,
    route_sense_compute_output,
)
from nerve_core.errors import NerveError
from nerve_store import LogRow, now_ms

from .group import ComputeOutcome, OutcomeKind
from .scheduler import Trigger

# (sense, directive, payload, cause) → the run's id and status
Launch = Callable[[str, WorkflowDirective, Any, str], Awaitable[tuple[str, RunStatus]]]


@dataclass(slots=True)
class SenseStats:
    computes: int = 0
    errors: int = 0
    signals: int = 0
    last_run_at: int | None = None  # ms since the epoch, UTC
    last_status: str | None = None
    last_duration_ms: float | None = None


class OutcomeRouter:
    def __init__(
        self,
        config: NerveConfig,
        record: Callable[[LogRow], None],
        publish: Callable[[Signal], Awaitable[None]],
        launch: Launch | None = None,
    ) -> None:
        self._config = config
        self._record = record
        self._publish = publish
        self._launch = launch
        self.stats = {name: SenseStats() for name in config.senses}
        # Signal ids: this kernel's start time and a counter (no syscall per signal), unique
        # across restarts because only one kernel runs per workspace at a time.
        self._id_prefix = f"{now_ms():x}"
        self._ids = itertools.count(1)

    def use(self, config: NerveConfig) -> None:
        """Route by a reloaded config from now on (figures of surviving senses are kept)."""
        self._config = config
        self.stats = {name: self.stats.get(name) or SenseStats() for name in config.senses}

    def new_signal_id(self) -> str:
        """A signal id, unique in the workspace (the kernel's own signals take theirs here)."""
        return self._signal_id()

    def _signal_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids):x}"

    async def handle(self, sense: str, trigger: Trigger, outcome: ComputeOutcome) -> None:
        # A sense a reload removed may still report the compute it had in flight.
        stats = self.stats.get(sense) or SenseStats()
        if outcome.kind in (OutcomeKind.UNAVAILABLE, OutcomeKind.PARKED):
            stats.last_status = str(outcome.kind)
            return
        stats.computes += 1
        stats.last_run_at = now_ms()
        stats.last_status = str(outcome.kind)
        result = outcome.result
        stats.last_duration_ms = result.duration_ms if result is not None else None
        context: dict[str, Any] = {"trigger": str(trigger.kind)}
        if trigger.attempt > 1:
            context["attempt"] = trigger.attempt
        if trigger.signal is not None:
            context["signal"] = trigger.signal.id
        cause = trigger.id  # every row this outcome writes names the trigger it came from
        parent = None if trigger.signal is None else trigger.signal.id  # and the signal, if any
        match outcome.kind:
            case OutcomeKind.OK:
                assert result is not None
                await self._route(sense, result.value, context, cause, parent)
            case OutcomeKind.ERROR:
                assert result is not None
                stats.errors += 1
                payload = {**context, "error": result.error, "traceback": result.traceback}
                self._record(
                    LogRow(sense, LogType.COMPUTE_ERROR, payload, cause=cause, parent=parent)
                )
            case OutcomeKind.TIMEOUT:
                stats.errors += 1
                sense_config = self._config.senses.get(sense)
                timeout = sense_config.timeout if sense_config is not None else None
                payload = {**context, "timeout_s": timeout}
                self._record(
                    LogRow(sense, LogType.COMPUTE_TIMEOUT, payload, cause=cause, parent=parent)
                )
            case OutcomeKind.CRASH:
                stats.errors += 1
                payload = {**context, "detail": outcome.detail}
                self._record(
                    LogRow(sense, LogType.COMPUTE_CRASH, payload, cause=cause, parent=parent)
                )

    async def _route(
        self, sense: str, value: Any, context: dict[str, Any], cause: str, parent: str | None
    ) -> None:
        route = route_sense_compute_output(value)
        if route.invalid_directive is not None:
            payload = {"reason": route.invalid_directive, **context}
            self._record(
                LogRow(sense, LogType.DIRECTIVE_INVALID, payload, cause=cause, parent=parent)
            )
        if route.kind is RouteKind.SIGNAL:
            signal = Signal(self._signal_id(), sense, route.payload, now_ms())
            if sense in self.stats:
                self.stats[sense].signals += 1
            self._record(
                LogRow(
                    sense,
                    LogType.SIGNAL,
                    route.payload,
                    ref_id=signal.id,
                    ts=signal.ts,
                    cause=cause,
                    parent=parent,
                )
            )
            await self._publish(signal)
        elif route.kind is RouteKind.LAUNCH:
            directive = route.launch
            assert directive is not None
            launch = {
                "workflow": directive.workflow_name,
                "maxRounds": directive.max_rounds,
                "prompt": directive.prompt,
                "payload": route.payload,
                **context,
            }
            if directive.workflow_name not in self._config.workflows:
                launch["error"] = (
                    f'workflow "{directive.workflow_name}" is not declared in '
                    "nerve.yaml; nothing was started"
                )
            elif self._launch is not None:
                try:  # the row names the run it created: lineage from the trigger to the run
                    launch["run_id"], status = await self._launch(
                        sense, directive, route.payload, cause
                    )
                    launch["status"] = str(status)
                except NerveError as exc:
                    launch["error"] = f"the launch failed: {exc}"
            run_id = launch.get("run_id")  # the row is found from its run too
            self._record(
                LogRow(
                    sense,
                    LogType.WORKFLOW_LAUNCH,
                    launch,
                    ref_id=None if run_id is None else str(run_id),
                    cause=cause,
                    parent=parent,
                )
            )
