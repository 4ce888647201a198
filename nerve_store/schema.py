"""The tables of data/logs.db, defined once with SQLAlchemy Core, and their forward migrations.

`logs` is append-only; `workflow_runs` holds one row per run, updated on each transition; `meta`
holds the schema version and the archive watermark. A file written by an older release is
brought forward by `migrate` step by step; a file from a newer release is refused rather than
guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from nerve_core.errors import StoreError

SCHEMA_VERSION = 5

metadata = MetaData()

logs = Table(
    "logs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Integer, nullable=False),  # ms since the epoch, UTC
    Column("source", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("ref_id", Text),
    Column("payload", Text),  # JSON
    # Lineage: the trigger (and so the compute) a row came from, or the request that made it.
    Column("cause", Text),
    # Lineage upward: the signal whose delivery triggered the compute a row came from (NULL for
    # an interval tick, the startup compute or a command).
    Column("parent", Text),
    Index("logs_ts", "ts"),
    Index("logs_source", "source", "id"),
    Index("logs_type", "type", "id"),
    Index("logs_ref", "ref_id", "id", sqlite_where=text("ref_id IS NOT NULL")),
    Index("logs_parent", "parent", "id", sqlite_where=text("parent IS NOT NULL")),
    # AUTOINCREMENT: an id is never reused, even after the newest rows were archived, so an id
    # names one row across logs.db and the archive forever.
    sqlite_autoincrement=True,
)

workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("max_rounds", Integer, nullable=False),
    Column("payload", Text),  # JSON: what the launching sense returned besides the directive
    Column("origin", Text, nullable=False),  # the sense that launched it, or "cli"
    Column("created_at", Integer, nullable=False),
    Column("started_at", Integer),
    Column("ended_at", Integer),
    Column("updated_at", Integer, nullable=False),
    Column("rounds", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("cause", Text),  # lineage: the trigger whose compute launched it, or the request
    Column("idem_key", Text),  # the client's idempotency key (`--key`): one run per workflow
    Index("workflow_runs_status", "status", "created_at"),
    Index("workflow_runs_workflow", "workflow", "created_at"),
    Index("workflow_runs_created", "created_at"),
    Index(
        "workflow_runs_key",
        "workflow",
        "idem_key",
        unique=True,
        sqlite_where=text("idem_key IS NOT NULL"),
    ),
)

# Timing that survives a restart: when each timer last fired and each throttled sense last
# started (`marks`), and the delayed triggers (`timers`), pending until they fire or are cancelled.
marks = Table(
    "marks",
    metadata,
    Column("key", Text, primary_key=True),  # "tick <sense> <grid>" or "start <sense>"
    Column("at_ms", Integer, nullable=False),
)

timers = Table(
    "timers",
    metadata,
    Column("timer_id", String, primary_key=True),
    Column("kind", Text, nullable=False),  # "sense" or "workflow"
    Column("target", Text, nullable=False),  # the sense or workflow
    Column("due_ms", Integer, nullable=False),
    Column("created_ms", Integer, nullable=False),
    Column("request", Text),  # JSON: a workflow run's prompt, maxRounds and payload
    Column("status", Text, nullable=False),  # pending, fired, cancelled, failed
    Column("ended_ms", Integer),
    Column("outcome", Text),  # the run it launched or the decision it met, or why it failed
    Index("timers_pending", "due_ms", sqlite_where=text("status = 'pending'")),
)

meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

META_SCHEMA_VERSION = "schema_version"
META_ARCHIVE_WATERMARK = "archive_watermark"  # ms: every row older than this is archived


# Step n brings a file from version n to n + 1. Version 0 is an empty file.
def _add_causes(connection: Connection) -> None:
    """Version 2: a `cause` column on logs and workflow_runs (lineage ids)."""
    for table in (logs, workflow_runs):
        present = {column["name"] for column in inspect(connection).get_columns(table.name)}
        if "cause" not in present:  # a file created by version 2's tables already has it
            connection.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN cause TEXT")


def _add_parents(connection: Connection) -> None:
    """Version 3: a `parent` column on logs (the signal that triggered a row's compute)."""
    present = {column["name"] for column in inspect(connection).get_columns(logs.name)}
    if "parent" not in present:  # a file created by version 3's tables already has it
        connection.exec_driver_sql(f"ALTER TABLE {logs.name} ADD COLUMN parent TEXT")
    connection.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS logs_parent ON {logs.name} (parent, id)"
        " WHERE parent IS NOT NULL"
    )


def _add_timing(connection: Connection) -> None:
    """Version 4: the `marks` and `timers` tables (durable timing)."""
    metadata.create_all(connection, tables=[marks, timers], checkfirst=True)


def _add_keys(connection: Connection) -> None:
    """Version 5: idempotency keys on workflow runs (`idem_key`, unique per workflow)."""
    present = {c["name"] for c in inspect(connection).get_columns(workflow_runs.name)}
    if "idem_key" not in present:  # a file created by version 5's tables already has it
        connection.exec_driver_sql(f"ALTER TABLE {workflow_runs.name} ADD COLUMN idem_key TEXT")
    connection.exec_driver_sql(
        f"CREATE UNIQUE INDEX IF NOT EXISTS workflow_runs_key ON {workflow_runs.name}"
        " (workflow, idem_key) WHERE idem_key IS NOT NULL"
    )


_MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    0: lambda connection: metadata.create_all(connection),
    1: _add_causes,
    2: _add_parents,
    3: _add_timing,
    4: _add_keys,
}


def schema_version(connection: Connection) -> int:
    if not inspect(connection).has_table("meta"):
        return 0
    value = connection.execute(
        select(meta.c.value).where(meta.c.key == META_SCHEMA_VERSION)
    ).scalar()
    return int(value) if value is not None else 0


def migrate(connection: Connection) -> int:
    """Bring the schema to `SCHEMA_VERSION` inside the caller's transaction; return the version
    found before."""
    found = schema_version(connection)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"logs.db has schema version {found}, newer than this nerve understands "
            f"({SCHEMA_VERSION}): upgrade nerve"
        )
    for version in range(found, SCHEMA_VERSION):
        _MIGRATIONS[version](connection)
    if found != SCHEMA_VERSION:
        set_meta(connection, META_SCHEMA_VERSION, str(SCHEMA_VERSION))
    return found


def set_meta(connection: Connection, key: str, value: str) -> None:
    upsert = sqlite_insert(meta).values(key=key, value=value)
    connection.execute(
        upsert.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value})
    )


def get_meta(connection: Connection, key: str) -> str | None:
    value = connection.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
    return None if value is None else str(value)
