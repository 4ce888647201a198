"""The workflow manager: every declared workflow's runner, the one entry for launches and
cancels, and recovery at start (runs a previous kernel left `started` or `crashed` resume,
`queued` ones queue again, in creation order). See `runner` for what happens to one run.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nerve_core import (
    NerveConfig,
    RunStatus,
    WorkflowConfig,
)
from nerve_store import (
    RunRecord,
    TransitionRun,
)

from .runner import WorkflowRunner
from .runs import RunnerParts, UnknownRun, UnknownWorkflow

log = logging.getLogger("nerve")


class WorkflowManager:
    """The runners of every declared workflow, and the one entry for launches and cancels."""

    def __init__(self, config: NerveConfig, parts: RunnerParts) -> None:
        self._config = config
        self._parts = parts
        self.runners = {name: self._make(name, wf) for name, wf in config.workflows.items()}
        self._writer = parts.writer

    def _make(self, name: str, workflow: WorkflowConfig) -> WorkflowRunner:
        return WorkflowRunner(name, workflow, self._parts)

    async def apply(
        self, config: NerveConfig, start: Callable[[WorkflowRunner], Awaitable[None]]
    ) -> list[WorkflowRunner]:
        """Take a reloaded config: new limits apply at once, new workflows get a runner
        (`start` runs it). Return the runners of removed workflows: the caller retires them
        (their runs drain) without holding up the reload."""
        self._config = config
        for name, workflow in config.workflows.items():
            runner = self.runners.get(name)
            if runner is None:
                runner = self.runners[name] = self._make(name, workflow)
                await start(runner)
            elif runner.config != workflow:
                await runner.use(workflow)
        return [
            self.runners.pop(name) for name in list(self.runners) if name not in config.workflows
        ]

    async def launch(
        self,
        workflow: str,
        prompt: str,
        max_rounds: int | None,
        origin: str,
        payload: Any = None,
        cause: str | None = None,
    ) -> tuple[str, RunStatus]:
        """Launch a run; `origin` is the sense or "cli", `cause` the lineage id of what did."""
        rounds = max_rounds or self._config.max_rounds
        return await self._runner(workflow).launch(prompt, rounds, origin, payload, cause)

    async def launch_once(
        self,
        workflow: str,
        key: str,
        prompt: str,
        max_rounds: int | None,
        origin: str,
        payload: Any = None,
    ) -> tuple[str, RunStatus, bool]:
        """Launch a run with idempotency key `key`, or find the one launched with it already:
        (its id, its status, whether it was found)."""
        rounds = max_rounds or self._config.max_rounds
        return await self._runner(workflow).keys.launch(key, prompt, rounds, origin, payload)

    def _runner(self, workflow: str) -> WorkflowRunner:
        runner = self.runners.get(workflow)
        if runner is None:
            raise UnknownWorkflow(f'no workflow "{workflow}" in nerve.yaml')
        return runner

    async def cancel(self, run_id: str) -> RunStatus:
        for runner in self.runners.values():
            if await runner.cancel(run_id):
                return RunStatus.CANCELLED
        record = await self._parts.reader.run(run_id)
        if record is None:
            raise UnknownRun(f'no workflow run "{run_id}"')
        raise UnknownRun(
            f'run "{run_id}" is already {record.status}: only a queued or started run can be'
            " cancelled"
        )

    async def recover(self) -> None:
        """Resume or re-queue what a previous kernel left unfinished."""
        by_workflow: dict[str, list[RunRecord]] = collections.defaultdict(list)
        for record in await self._parts.reader.unfinished_runs():
            if record.workflow in self.runners:
                by_workflow[record.workflow].append(record)
                continue
            status = RunStatus.DROPPED if record.status is RunStatus.QUEUED else RunStatus.FAILED
            await self._writer.write_async(
                TransitionRun(
                    record.run_id, status, reason="its workflow is no longer declared in nerve.yaml"
                )
            )
        for workflow, records in by_workflow.items():
            await self.runners[workflow].recover(records)

    async def stop(self) -> None:
        for runner in self.runners.values():
            await runner.stop()
