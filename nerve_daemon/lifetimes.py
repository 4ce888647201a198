"""Lifetimes of the kernel's parts: each part's task tracked so the kernel can wait for it to end
and cut it short, and one shared deadline for a whole stop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup, TaskStatus


class Tracked:
    """A part's task, with a way to wait for it to end and to cut it short."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()

    @classmethod
    async def start(cls, group: TaskGroup, run: Callable[..., Awaitable[None]]) -> Tracked:
        tracked = cls()
        await group.start(tracked._run, run)
        return tracked

    async def _run(
        self, run: Callable[..., Awaitable[None]], *, task_status: TaskStatus[None]
    ) -> None:
        try:
            with self.scope:
                await run(task_status=task_status)
        finally:
            self.done.set()

    async def finish(self, timeout: float) -> None:
        """Wait up to `timeout` for the task to end on its own, then cancel it."""
        with anyio.move_on_after(timeout, shield=True):
            await self.done.wait()
        self.scope.cancel()
        with anyio.CancelScope(shield=True):
            await self.done.wait()


def left(deadline: float) -> float:
    """What is left of `deadline` (loop time), never less than nothing."""
    return max(0.0, deadline - anyio.current_time())


async def until_first(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return as soon as the first of `waits` returns; the others are cancelled."""
    async with anyio.create_task_group() as group:

        async def one(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            group.cancel_scope.cancel()

        for wait in waits:
            group.start_soon(one, wait)
