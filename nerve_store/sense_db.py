"""Sense databases: `data/senses/<name>.db`, one per sense.

The owner (the worker of the sense's group) opens it read-write with `open_sense_db`, which
applies `senses/<name>/migrations/*.sql` once each, in file-name order, each file in its own
transaction, recorded in the table `_nerve_migrations`. A failing migration leaves the database
as it was before that file and names the file, the statement and its line. Everyone else (peer
senses, roles, the CLI) opens it with `open_sense_db_readonly`, through which no statement can
write.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, select
from sqlalchemy.exc import DBAPIError

from nerve_core import Workspace
from nerve_core.errors import StoreError

from . import _sqlite
from .log_store import now_ms

_metadata = MetaData()
applied_migrations = Table(
    "_nerve_migrations",
    _metadata,
    Column("name", Text, primary_key=True),
    Column("applied_at", Integer, nullable=False),  # ms since the epoch, UTC
)


class MigrationError(StoreError):
    """A migration file failed; the database is as it was before that file."""


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    line: int  # where it starts in its file


def open_sense_db(workspace: Workspace, name: str) -> Engine:
    """The read-write engine of sense `name`, its pending migrations applied."""
    path = workspace.sense_db(name)
    engine = _sqlite.open_writer(path)
    try:
        apply_migrations(engine, workspace.sense_migrations_dir(name), workspace)
    except BaseException as exc:
        engine.dispose()
        if _sqlite.damaged(exc):  # that sense's load error; its group-mates load and run
            raise _sqlite.unusable(path, f'the database of sense "{name}"', exc) from None
        raise
    return engine


def open_sense_db_readonly(workspace: Workspace, name: str) -> Engine:
    """A read-only engine over sense `name`'s database."""
    return _sqlite.open_reader(workspace.sense_db(name), what=f'the database of sense "{name}"')


def apply_migrations(engine: Engine, folder: Path, workspace: Workspace | None = None) -> list[str]:
    """Apply the `*.sql` files of `folder` not applied yet; return their names."""
    files = sorted(folder.glob("*.sql")) if folder.is_dir() else []
    with engine.begin() as connection:
        _metadata.create_all(connection)
        done = set(connection.execute(select(applied_migrations.c.name)).scalars())
    applied = []
    for path in files:
        if path.name in done:
            continue
        shown = workspace.relative(path) if workspace else str(path)
        try:
            statements = split_statements(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise MigrationError(f"{shown}: cannot be read: {exc}") from None
        with engine.begin() as connection:
            for statement in statements:
                try:
                    connection.exec_driver_sql(statement.sql)
                except DBAPIError as exc:
                    reason = exc.orig if exc.orig is not None else exc
                    first_line = statement.sql.splitlines()[0]
                    raise MigrationError(
                        f"{shown}:{statement.line}: {reason} (in `{first_line}`); "
                        "the migration was rolled back"
                    ) from None
            connection.execute(
                applied_migrations.insert().values(name=path.name, applied_at=now_ms())
            )
        applied.append(path.name)
    return applied


def split_statements(script: str) -> list[Statement]:
    """The statements of an SQL script, each with the line its code starts on. SQLite's own
    `complete_statement` decides where one ends, so semicolons in strings, comments and trigger
    bodies are handled as SQLite handles them. (`executescript` would commit on its own.)"""
    statements: list[Statement] = []
    buffer, buffer_line, line = "", 1, 1
    for piece in script.split(";"):
        if not buffer:
            buffer_line = line
        buffer += piece + ";"
        line += piece.count("\n")
        if sqlite3.complete_statement(buffer):
            _add(statements, buffer, buffer_line)
            buffer = ""
    _add(statements, buffer.removesuffix(";"), buffer_line)
    return statements


def _add(statements: list[Statement], sql: str, first_line: int) -> None:
    """Add `sql` (starting at `first_line`) unless it holds only blanks and comments."""
    lines = sql.split("\n")
    for offset, text in enumerate(lines):
        code = text.split("--", 1)[0].strip()
        if code and code != ";":
            statements.append(Statement("\n".join(lines[offset:]).strip(), first_line + offset))
            return
