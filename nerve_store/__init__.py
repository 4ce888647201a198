"""nerve_store: where nerve keeps what it promises not to lose.

- `LogStore` over data/logs.db (append-only logs, workflow runs, meta) and `LogWriter`, its one
  writer, committing in groups on its own thread, and `LogReader`, reads for an event loop that
  never take the write lock;
- `archive_logs`: old days to data/archive/logs/YYYY-MM-DD.jsonl, crash-safe and idempotent;
- `BlobStore`: content-addressed blobs under data/blobs/;
- sense databases with their migrations, and read-only handles no statement can write through.

Built on nerve_core only.
"""

from __future__ import annotations

from ._files import make_dirs
from ._sqlite import quick_check
from .archive import ArchiveReport, archive_logs, read_archive_day
from .blobs import BlobStore
from .log_reader import LogReader
from .log_store import (
    KERNEL_SOURCE,
    AppendLogs,
    AppendMessage,
    CreateRun,
    DeleteArchived,
    LogRecord,
    LogRow,
    LogStore,
    RunRecord,
    SetMeta,
    ThreadPage,
    Together,
    TransitionRun,
    WriteOp,
    now_ms,
)
from .log_writer import LogWriter, Stall
from .sense_db import MigrationError, apply_migrations, open_sense_db, open_sense_db_readonly
from .timing import AddTimer, EndTimer, SetMarks, TimerRecord, read_marks, read_timer, read_timers

__all__ = [
    "KERNEL_SOURCE",
    "AddTimer",
    "AppendLogs",
    "AppendMessage",
    "ArchiveReport",
    "BlobStore",
    "CreateRun",
    "DeleteArchived",
    "EndTimer",
    "LogReader",
    "LogRecord",
    "LogRow",
    "LogStore",
    "LogWriter",
    "MigrationError",
    "RunRecord",
    "SetMarks",
    "SetMeta",
    "Stall",
    "ThreadPage",
    "TimerRecord",
    "Together",
    "TransitionRun",
    "WriteOp",
    "apply_migrations",
    "archive_logs",
    "make_dirs",
    "now_ms",
    "open_sense_db",
    "open_sense_db_readonly",
    "quick_check",
    "read_archive_day",
    "read_marks",
    "read_timer",
    "read_timers",
]
