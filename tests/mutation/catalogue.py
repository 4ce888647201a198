"""The promises `run.py` breaks, one at a time: where, how, and the tests that should notice.

`old` must occur exactly once in `path`. `durability` marks the promises users rely on most
(commit before acknowledgement, before the next round, resume, queued runs kept): none of those
may survive.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    name: str  # the promise, in a few words
    what: str  # the mutation, in a few words
    path: str
    old: str
    new: str
    tests: list[str]
    durability: bool = False


WRITER = "nerve_store/log_writer.py"
BLOBS = "nerve_store/blobs.py"
SQLITE = "nerve_store/_sqlite.py"
ARCHIVE = "nerve_store/archive.py"
IPC = "nerve_daemon/control/ipc.py"
SCHEDULER = "nerve_daemon/senses/scheduler.py"
GROUP = "nerve_daemon/senses/group.py"
RUNNER = "nerve_daemon/workflows/runner.py"
ADMISSION = "nerve_daemon/workflows/admission.py"
WORKER = "nerve_daemon/workflows/worker.py"
DELAYED = "nerve_daemon/timing/delayed.py"
LIMITS = "nerve_daemon/timing/limits.py"
PARKING = "nerve_daemon/senses/parking.py"
LOG_STORE = "nerve_store/log_store.py"
PAUSES = "nerve_daemon/timing/pauses.py"
CGROUPS = "nerve_daemon/supervise/cgroups.py"
WATCH = "nerve_daemon/supervise/resource_watch.py"
NOTIFY = "nerve_daemon/control/notify.py"
SERVICE = "nerve_daemon/service.py"

MUTATIONS = [
    # -- the log writer ------------------------------------------------------------------------
    Mutation(
        "log writer: acknowledged only after commit",
        "waiters woken before the batch is applied",
        WRITER,
        "        try:\n            self._apply_until_writable([pending.op for pending in batch])",
        "        self._wake([p.event for p in batch if p.event is not None])\n"
        "        try:\n            self._apply_until_writable([pending.op for pending in batch])",
        ["tests/store/test_log_writer.py"],
        durability=True,
    ),
    Mutation(
        "log writer: one bad write fails alone",
        "every write of a failing batch failed",
        WRITER,
        "                for pending in batch:  # isolate the failing operation(s)\n"
        "                    try:\n"
        "                        self._apply_until_writable([pending.op])",
        "                for pending in batch:  # isolate the failing operation(s)\n"
        "                    try:\n"
        "                        raise exc",
        ["tests/store/test_log_writer.py"],
        durability=True,
    ),
    Mutation(
        "log writer: an unwritable store stalls, it does not fail writes",
        "a full disk fails the batch",
        WRITER,
        "                if not store_unavailable(exc):\n                    raise",
        "                if True:\n                    raise",
        ["tests/store/test_log_writer.py"],
        durability=True,
    ),
    Mutation(
        "log writer: only posted rows are dropped while stalled",
        "a write someone waits for is dropped past max_held",
        WRITER,
        "            and pending.future is None\n",
        "",
        ["tests/store/test_log_writer.py"],
        durability=True,
    ),
    # -- the blob store ------------------------------------------------------------------------
    Mutation(
        "blobs: a read verifies the digest",
        "the digest check skipped",
        BLOBS,
        "        if actual != digest:",
        "        if False:",
        ["tests/store/test_blobs.py"],
    ),
    Mutation(
        "blobs: no input names a file outside the store",
        "the digest pattern matched as a prefix",
        BLOBS,
        "not _DIGEST.fullmatch(digest)",
        "not _DIGEST.match(digest)",
        ["tests/store/test_blobs.py"],
    ),
    Mutation(
        "blobs: a failed write leaves no temp file",
        "the temp file kept on failure",
        BLOBS,
        "                Path(temp).unlink(missing_ok=True)\n",
        "",
        ["tests/store/test_blobs.py", "tests/reliability/test_resources.py"],
    ),
    Mutation(
        "log writer: under normal, the WAL is synced within a second of a commit (power loss)",
        "the sync once a commit finds it due removed",
        WRITER,
        "                if self._until_sync() == 0:\n",
        "                if False:\n",
        ["tests/store/test_log_writer.py"],
        durability=True,
    ),
    Mutation(
        "kernel: under normal, the log writer syncs the WAL (power loss)",
        "no sync period given to the writer",
        "nerve_daemon/kernel.py",
        "                        sync_every_s=WAL_SYNC_EVERY_S\n",
        "                        sync_every_s=None\n",
        ["tests/reliability/test_power_loss.py"],
        durability=True,
    ),
    Mutation(
        "folders: a new folder's name is synced into its parent (power loss)",
        "the parent's fsync after a mkdir removed",
        "nerve_store/_files.py",
        "        fsync_dir(folder.parent)\n",
        "",
        ["tests/reliability/test_power_loss.py"],
        durability=True,
    ),
    Mutation(
        "blobs: a blob is fsynced before it is renamed into place",
        "the fsync removed",
        BLOBS,
        "                os.fsync(out.fileno())\n",
        "",
        ["tests/store/test_blobs.py"],
        durability=True,
    ),
    Mutation(
        "blobs: the rename is durable before a row can name the blob",
        "the folder's fsync after the rename removed",
        BLOBS,
        "            fsync_dir(target.parent)  # failing that",
        "            pass  # failing that",
        ["tests/store/test_blobs.py"],
        durability=True,
    ),
    Mutation(
        "recovery: runs are recovered in the order they were acknowledged (clock jumps)",
        "ordered by wall-clock created_at",
        "nerve_store/log_store.py",
        '            .order_by(literal_column("rowid"))',
        "            .order_by(workflow_runs.c.created_at, workflow_runs.c.run_id)",
        ["tests/store/test_log_store.py", "tests/reliability/test_clock_jumps.py"],
        durability=True,
    ),
    Mutation(
        "archive: a wall clock set forward moves no day early (clock jumps)",
        "the cutoff from the wall clock alone",
        "nerve_daemon/control/archive_schedule.py",
        "        return min(wall, self._anchor[0] + monotonic - self._anchor[1])\n",
        "        return wall\n",
        ["tests/daemon/test_archive_clock.py"],
        durability=True,
    ),
    Mutation(
        "store check: damaged pages found after a start are said",
        "what quick_check found ignored",
        "nerve_daemon/control/store_check.py",
        "        if not problems:\n",
        "        if True:\n",
        ["tests/reliability/test_corrupt_files.py"],
    ),
    Mutation(
        "recover: garbage rowids past the table's last are not taken for rows",
        "any rising rowid taken",
        "nerve_store/recover.py",
        "        if not after < cast(int, row[0]) <= (_MAX_ROWID if last is None else last):\n",
        "        if not after < cast(int, row[0]):\n",
        ["tests/store/test_recover.py"],
        durability=True,
    ),
    # -- the read-only authorizer --------------------------------------------------------------
    Mutation(
        "authorizer: a read-only handle cannot insert",
        "INSERT allowed",
        SQLITE,
        "    sqlite3.SQLITE_RECURSIVE,\n}",
        "    sqlite3.SQLITE_RECURSIVE,\n    sqlite3.SQLITE_INSERT,\n}",
        ["tests/store/test_sense_db.py", "tests/store/test_log_store.py"],
    ),
    Mutation(
        "authorizer: a PRAGMA that sets is refused",
        "a PRAGMA with an argument allowed",
        SQLITE,
        "(pragma in _READ_PRAGMAS and arg2 is None)",
        "(pragma in _READ_PRAGMAS)",
        ["tests/store/test_sense_db.py", "tests/store/test_log_store.py"],
    ),
    Mutation(
        "authorizer: installed on every read-only connection",
        "no authorizer (mode=ro and query_only remain)",
        SQLITE,
        "        connection.set_authorizer(_authorize_read)\n",
        "",
        ["tests/store/test_sense_db.py", "tests/store/test_log_store.py"],
    ),
    # -- the archive ---------------------------------------------------------------------------
    Mutation(
        "archive: only complete UTC days before the cutoff",
        "the cutoff not rounded down to its day",
        ARCHIVE,
        "    boundary = cutoff_ms - cutoff_ms % DAY_MS\n",
        "    boundary = cutoff_ms\n",
        ["tests/store/test_archive.py"],
        durability=True,
    ),
    Mutation(
        "archive: a re-run never duplicates a row",
        "rows the day's file holds written again",
        ARCHIVE,
        "            if row.id in held:\n                continue\n",
        "",
        ["tests/store/test_archive.py"],
        durability=True,
    ),
    Mutation(
        "archive: the day's file is fsynced before the rows are deleted",
        "the file's fsync removed",
        ARCHIVE,
        "        out.flush()\n        os.fsync(out.fileno())\n",
        "        out.flush()\n",
        ["tests/store/test_archive.py", "tests/cli/test_store_commands.py"],
        durability=True,
    ),
    # -- the IPC server ------------------------------------------------------------------------
    Mutation(
        "IPC: a request line is limited to 1 MiB",
        "the server reads lines of 16 MiB",
        IPC,
        'line = await reader.receive_until(b"\\n", MAX_LINE_BYTES)',
        'line = await reader.receive_until(b"\\n", MAX_LINE_BYTES * 16)',
        ["tests/daemon/test_daemon_ipc.py"],
    ),
    Mutation(
        "IPC: a request that fails unexpectedly is answered, the daemon goes on",
        "the catch-all removed",
        IPC,
        '        except Exception as exc:\n            log.exception("the %s request failed',
        '        except ZeroDivisionError as exc:\n            log.exception("the %s request failed',
        ["tests/daemon/test_daemon_ipc.py", "tests/reliability/test_hostile_values.py"],
    ),
    Mutation(
        "IPC: the socket is the user's alone (0600)",
        "umask 022",
        IPC,
        "os.umask(0o177)",
        "os.umask(0o022)",
        ["tests/daemon/test_daemon_ipc.py", "tests/reliability/test_security.py"],
    ),
    # -- the scheduler -------------------------------------------------------------------------
    Mutation(
        "scheduler: computes of a sense at least `throttle` apart",
        "the window ends at half the throttle",
        SCHEDULER,
        "    return last_start + state.throttle\n",
        "    return last_start + state.throttle / 2\n",
        ["tests/daemon/test_scheduler_clock.py", "tests/daemon/test_scheduling.py"],
    ),
    Mutation(
        "scheduler: the throttle window's end is exact",
        "`<` made `<=`",
        SCHEDULER,
        "state.throttle > 0 and self._clock.now() < last + state.throttle",
        "state.throttle > 0 and self._clock.now() <= last + state.throttle",
        ["tests/daemon/test_scheduler_clock.py"],
    ),
    Mutation(
        "scheduler: a throttle window outlives a restart",
        "the start mark not written",
        SCHEDULER,
        "                self.marks.start(state.name, self._clock.wall())\n",
        "                pass\n",
        ["tests/daemon/test_timing.py", "tests/reliability/test_time_restarts.py"],
    ),
    Mutation(
        "scheduler: catch_up all computes each missed tick",
        "the missed ticks after the first forgotten",
        SCHEDULER,
        "            state.backlog.extend(rest)\n",
        "",
        ["tests/daemon/test_timing.py"],
    ),
    Mutation(
        "scheduler: a compute past its timeout is abandoned on time",
        "the timeout enforced at 8 ×",
        GROUP,
        "return started + job.timeout + self._pauses.paused_since(started)",
        "return started + 8 * job.timeout + self._pauses.paused_since(started)",
        ["tests/daemon/test_scheduling.py", "tests/reliability/test_worker_faults.py"],
    ),
    # -- workflows: admission, runner, worker ---------------------------------------------------
    Mutation(
        "admission: at most `concurrency` runs at once",
        "`<` made `<=`",
        ADMISSION,
        "return len(self._holding) < self.config.concurrency",
        "return len(self._holding) <= self.config.concurrency",
        ["tests/daemon/test_overlap.py", "tests/reliability/test_admission.py"],
    ),
    Mutation(
        "admission: a new run does not pass queued ones",
        "a free slot goes to the newcomer",
        ADMISSION,
        "        if self.free() and not len(self.queue):",
        "        if self.free():",
        ["tests/daemon/test_overlap.py", "tests/daemon/test_workflows.py"],
    ),
    Mutation(
        "admission: overflow restart cancels the oldest run",
        "it cancels the newest",
        ADMISSION,
        "oldest = next(iter(self._holding))",
        "oldest = next(reversed(self._holding))",
        ["tests/daemon/test_overlap.py"],
    ),
    Mutation(
        "admission: evict newest evicts the newest queued run",
        "the policies swapped",
        ADMISSION,
        "newest = config.evict is Evict.NEWEST",
        "newest = config.evict is not Evict.NEWEST",
        ["tests/daemon/test_overlap.py"],
    ),
    Mutation(
        "runner: queued runs are queued again at restart",
        "queued runs forgotten by recover()",
        RUNNER,
        "                self._admission.queue.enqueue(run)\n                continue",
        "                continue",
        ["tests/daemon/test_workflows.py", "tests/e2e/test_workflow_recovery.py"],
        durability=True,
    ),
    Mutation(
        "runner: a message is acknowledged after it commits",
        "the ack sent before the write",
        RUNNER,
        "        try:\n            await self._write(op)\n        except Exception as exc:",
        "        with contextlib.suppress(WorkerExited):\n"
        "            await worker.send(MessageAck(message.run_id, message.round))\n"
        "        try:\n            await self._write(op)\n        except Exception as exc:",
        ["tests/daemon/test_workflows.py"],
        durability=True,
    ),
    Mutation(
        "runner: a resumed run continues from its messages",
        "resumed with START only",
        RUNNER,
        "            thread = await self._reader.messages(run.run_id)\n",
        "            thread = (await self._reader.messages(run.run_id))[:1]\n",
        ["tests/daemon/test_workflows.py", "tests/e2e/test_workflow_recovery.py"],
        durability=True,
    ),
    Mutation(
        "worker: the next round waits for the commit",
        "the ack not awaited",
        WORKER,
        "                await acked.wait()  # committed by the kernel: the next round may begin\n",
        "",
        ["tests/daemon/test_workflows.py"],
        durability=True,
    ),
    Mutation(
        "worker: a role is tried `attempts` times",
        "one try fewer",
        WORKER,
        "        for attempt in range(1, attempts + 1):",
        "        for attempt in range(1, attempts):",
        ["tests/daemon/test_retries.py"],
    ),
    Mutation(
        "worker: a cancelled run's thread stops",
        "cancel ignored by the worker",
        WORKER,
        "        if scope is not None:\n            scope.cancel()",
        "        if scope is not None:\n            pass",
        ["tests/daemon/test_workflows.py", "tests/daemon/test_stalls.py"],
    ),
    # -- time ----------------------------------------------------------------------------------
    Mutation(
        "delayed triggers: acknowledged means committed",
        "the timer kept in memory only",
        DELAYED,
        "        await self._write(AddTimer(timer_id, kind, target, due_ms, record.created_ms, "
        "request))\n",
        "",
        ["tests/daemon/test_delayed_triggers.py", "tests/reliability/test_time_restarts.py"],
        durability=True,
    ),
    Mutation(
        "rate limits: no window holds more than the count",
        "one call too many let through",
        LIMITS,
        "    if len(grants) >= count:\n",
        "    if len(grants) > count:\n",
        ["tests/daemon/test_rate_limits.py"],
    ),
    Mutation(
        "parking: a sense that keeps killing its worker is parked",
        "never parked",
        PARKING,
        "if len(kills) < self._policy.park_after or sense in self.parked:",
        "if len(kills) < self._policy.park_after + 100 or sense in self.parked:",
        ["tests/reliability/test_bad_senses.py"],
    ),
    Mutation(
        "keys: a retried launch is the run its key made (durability)",
        "the key not committed with the run",
        LOG_STORE,
        "            op.cause, op.key, ts, started, ended, ts,\n",
        "            op.cause, None, ts, started, ended, ts,\n",
        ["tests/daemon/test_keys.py"],
        durability=True,
    ),
    Mutation(
        "timeouts: the kernel's own pauses are no compute's fault",
        "pauses not counted",
        PAUSES,
        "        return away\n",
        "        return 0.0\n",
        ["tests/reliability/test_stopped_kernel.py"],
    ),
    Mutation(
        "memory limits: an OOM kill in the group's cgroup is a limit kill",
        "said as a crash",
        GROUP,
        "        if worker.exit_code != -signal.SIGKILL or cgroup.oom_kills() <= oom_kills:",
        "        if worker.exit_code != -signal.SIGKILL or cgroup.oom_kills() <= oom_kills + 1:",
        ["tests/reliability/test_memory_limits.py", "tests/reliability/test_resources.py"],
    ),
    Mutation(
        "memory limits: the cgroup's limit is the group's",
        "set to unlimited",
        CGROUPS,
        "        value = self._files.unlimited if limit is None else str(limit)",
        "        value = self._files.unlimited",
        ["tests/daemon/test_cgroups.py", "tests/reliability/test_memory_limits.py"],
    ),
    Mutation(
        "memory limits: a daemon alone in its v2 cgroup moves into a leaf to delegate",
        "never moves",
        CGROUPS,
        "                    delegation._empty_own()\n",
        "                    pass\n",
        ["tests/daemon/test_cgroups.py", "tests/reliability/test_cgroup_delegation.py"],
    ),
    Mutation(
        "memory limits: a v2 cgroup shared with other processes is left alone",
        "the others moved too",
        CGROUPS,
        "        others = sorted(held - ours)\n",
        "        others: list[int] = []\n",
        ["tests/daemon/test_cgroups.py", "tests/reliability/test_cgroup_delegation.py"],
    ),
    Mutation(
        "systemd: ready once the kernel serves",
        "ready before it started",
        SERVICE,
        "            await group.start(kernel.run)\n            ready.set()\n",
        '            notify.ready(f"serving {workspace.root}: 1 sense")\n'
        "            await group.start(kernel.run)\n            ready.set()\n",
        ["tests/e2e/test_systemd.py"],
    ),
    Mutation(
        "signals: SIGHUP reloads the daemon and stops nerve dev gracefully",
        "not handled (the default: the process dies)",
        SERVICE,
        "_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)\n",
        "_SIGNALS = (signal.SIGINT, signal.SIGTERM)\n",
        ["tests/e2e/test_systemd.py", "tests/e2e/test_dev.py"],
    ),
    Mutation(
        "systemd: workers do not inherit the notification variables",
        "left in the environment",
        NOTIFY,
        '        address = environ.pop("NOTIFY_SOCKET", None) or None\n',
        '        address = environ.get("NOTIFY_SOCKET", None) or None\n',
        ["tests/daemon/test_notify.py", "tests/e2e/test_systemd.py"],
    ),
    Mutation(
        "memory limits: polled where no cgroup enforces them",
        "never polled",
        WATCH,
        "        polled = group.memory_enforced_by == POLL",
        "        polled = False",
        ["tests/reliability/test_resources.py", "tests/reliability/test_memory_limits.py"],
    ),
    Mutation(
        "idle workflows: a run for an idle workflow waits for its worker and starts",
        "not woken for it",
        RUNNER,
        "            await self._woken()  # answered `started`, as with a worker up, once it is up\n",
        "            pass\n",
        ["tests/daemon/test_workflows.py", "tests/e2e/test_cli_daemon.py"],
    ),
    Mutation(
        "workflow roles: as many threads as runs, not anyio's default 40",
        "the default thread pool",
        WORKER,
        "        function, argument, abandon_on_cancel=True, limiter=_ROLE_THREADS\n",
        "        function, argument, abandon_on_cancel=True\n",
        ["tests/daemon/test_workflows.py"],
    ),
]
