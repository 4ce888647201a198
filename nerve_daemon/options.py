"""What an embedder sets on a kernel (`KernelOptions`), and the kernel's own errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from nerve_core.errors import NerveError
from nerve_store import LogRow

from .senses.group import ComputeOutcome
from .senses.scheduler import Clock, Trigger
from .supervise.policy import GroupPolicy


class UnknownSense(NerveError):
    pass


@dataclass
class KernelOptions:
    group_policy: GroupPolicy = field(default_factory=GroupPolicy)
    stop_timeout_s: float = 10.0
    resource_interval_s: float = 1.0
    serve_ipc: bool = False  # listen on the workspace's nerve.sock (hold the workspace lock)
    watch_files: bool = False  # reload code, check nerve.yaml, as the workspace's files change
    drain_timeout_s: float = 30.0  # how long a reloaded workflow's runs in flight may go on
    # The kernel's own rows may wait this long to share a commit (awaited writes never wait).
    log_linger_s: float = 0.002
    clock: Clock | None = None
    # Observers, called in the kernel's loop: every row as it is recorded, every compute outcome.
    on_row: Callable[[LogRow], None] | None = None
    on_compute: Callable[[str, Trigger, ComputeOutcome], None] | None = None
    on_output: Callable[[str, str], None] | None = None  # a worker's printed line, by worker name
