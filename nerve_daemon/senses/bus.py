"""SignalBus: in-process publish/subscribe of signals.

Publishing puts the signal on a bounded memory stream (a full stream makes the publisher wait:
backpressure, never an unbounded pile); one dispatcher task hands each signal to the callbacks
subscribed to its source. The interface is publish/subscribe only, so another backend (Redis
Streams, NATS) can take its place later.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from nerve_core import Signal

DEFAULT_BUFFER = 1024


class SignalBus:
    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self._subscribers: dict[str, list[Callable[[Signal], None]]] = {}
        self._send, self._receive = anyio.create_memory_object_stream[Signal](buffer)
        self.published = 0

    def subscribe(self, source: str, callback: Callable[[Signal], None]) -> None:
        self._subscribers.setdefault(source, []).append(callback)

    def listened(self, source: str) -> bool:
        """Whether anything is subscribed to `source` now."""
        return bool(self._subscribers.get(source))

    def unsubscribe_all(self) -> None:
        """Drop every subscription (before a reloaded scheduler subscribes anew)."""
        self._subscribers = {}

    async def publish(self, signal: Signal) -> None:
        """Queue `signal` for its subscribers; wait only when the buffer is full."""
        self.published += 1
        try:
            self._send.send_nowait(signal)
        except anyio.WouldBlock:
            await self._send.send(signal)

    def offer(self, signal: Signal) -> bool:
        """Queue `signal` if the buffer has room, never waiting; False when it had none (the
        kernel's own signals are offered: the kernel must not wait on its listeners)."""
        try:
            self._send.send_nowait(signal)
        except anyio.WouldBlock:
            return False
        self.published += 1
        return True

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        with self._send, self._receive:
            async for signal in self._receive:
                for callback in self._subscribers.get(signal.source, ()):
                    callback(signal)
