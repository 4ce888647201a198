"""The kernel's delayed triggers: `trigger-sense` and `trigger-workflow` with `at`, `list-timers`
and `cancel-timer`, over `DelayedTimers` (timing/delayed.py).

A timer's id is a trigger id of kind `d` (`d-<kernel start>-<n>`): the compute a sense timer asks
for carries it as its trigger, and a workflow timer's run has it as its cause, so `nerve explain`
walks from either back to the timer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nerve_core import NerveConfig, RunStatus, TimerInfo, TriggerKind
from nerve_store import EndTimer, LogReader, TimerRecord, WriteOp, now_ms

from ..senses.scheduler import Decision, Trigger, new_trigger_id
from ..timing.clock import Clock
from ..timing.delayed import DelayedTimers

Launch = Callable[[str, str, int | None, Any, str], Awaitable[tuple[str, RunStatus]]]


class DelayedTriggers:
    def __init__(
        self,
        clock: Clock,
        write: Callable[[WriteOp], Awaitable[None]],
        config: Callable[[], NerveConfig],
        request: Callable[[str, Trigger], Decision | None],
        launch: Launch,
    ) -> None:
        self._write = write
        self._config = config
        self._request = request
        self._launch = launch
        self.timers = DelayedTimers(clock, write, self._fire)

    async def load(self, reader: LogReader) -> None:
        """Take the pending timers from logs.db; a workflow timer whose run exists already (the
        kernel died between the launch and the timer's end) is marked fired, not fired again."""
        pending = await reader.timers()
        workflow_ids = [timer.timer_id for timer in pending if timer.kind == "workflow"]
        launched = await reader.launched_by(workflow_ids) if workflow_ids else {}
        for timer in pending:
            if timer.timer_id in launched:
                await self._write(
                    EndTimer(timer.timer_id, "fired", now_ms(), launched[timer.timer_id])
                )
        self.timers.load([timer for timer in pending if timer.timer_id not in launched])

    async def sense_at(self, sense: str, at_ms: int) -> TimerInfo:
        record = await self.timers.add(new_trigger_id(TriggerKind.DELAYED), "sense", sense, at_ms)
        return info(record)

    async def workflow_at(
        self, workflow: str, prompt: str, max_rounds: int | None, payload: Any, at_ms: int
    ) -> TimerInfo:
        request = {"prompt": prompt, "maxRounds": max_rounds, "payload": payload}
        timer_id = new_trigger_id(TriggerKind.DELAYED)
        return info(await self.timers.add(timer_id, "workflow", workflow, at_ms, request))

    async def cancel(self, timer_id: str) -> TimerInfo:
        return info(await self.timers.cancel(timer_id))

    def pending(self) -> list[TimerInfo]:
        return [info(record) for record in self.timers.pending()]

    async def _fire(self, timer: TimerRecord) -> tuple[str, str]:
        config = self._config()
        if timer.kind == "sense":
            if timer.target not in config.senses:
                return "failed", f'no sense "{timer.target}" in nerve.yaml any more'
            decision = self._request(timer.target, Trigger(TriggerKind.DELAYED, id=timer.timer_id))
            return "fired", str(decision or "skipped: the scheduler is stopping")
        if timer.target not in config.workflows:
            return "failed", f'no workflow "{timer.target}" in nerve.yaml any more'
        request = timer.request or {}
        run_id, status = await self._launch(
            timer.target,
            request.get("prompt", ""),
            request.get("maxRounds"),
            request.get("payload"),
            timer.timer_id,
        )
        return "fired", f"{run_id} {status}"


def info(record: TimerRecord) -> TimerInfo:
    return TimerInfo(
        timer_id=record.timer_id,
        kind=record.kind,
        target=record.target,
        due=record.due_ms,
        created=record.created_ms,
        request=record.request,
    )
