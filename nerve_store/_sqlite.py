"""Opening SQLite files through SQLAlchemy the way nerve needs them, in one place.

- Writers: WAL, a busy timeout, `BEGIN IMMEDIATE` transactions that SQLAlchemy controls (the
  driver's own implicit transactions are turned off, so DDL in a migration is transactional too).
- Readers: `mode=ro`, `query_only`, and an authorizer that refuses every action but reading, so no
  statement (not ATTACH, not PRAGMA, not a write hidden in a CTE) can turn a read-only handle into
  a writer.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from nerve_core.errors import StoreError

from ._files import make_dirs

BUSY_TIMEOUT_MS = 5000
WAL_SIZE_LIMIT = 8 * 1024 * 1024  # bytes logs.db's WAL is cut back to after a checkpoint

# Authorizer action codes that only read: everything else is denied on read-only handles.
_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
# PRAGMAs that read when given no argument (an argument would set them).
_READ_PRAGMAS = {
    "table_list",
    "database_list",
    "collation_list",
    "function_list",
    "pragma_list",
    "compile_options",
    "data_version",
    "user_version",
    "schema_version",
    "page_count",
    "page_size",
    "freelist_count",
    "journal_mode",
    "encoding",
    "integrity_check",
    "quick_check",
    "read_uncommitted",  # SQLAlchemy reads it when a connection is first made
}
# PRAGMAs whose argument names a table or index to describe: they read whatever it is.
_DESCRIBE_PRAGMAS = {
    "table_info",
    "table_xinfo",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
}


def open_writer(path: Path, *, synchronous: str = "normal") -> Engine:
    """An engine over `path` (created if missing) for its one writer."""
    make_dirs(path.parent)
    engine = create_engine(f"sqlite+pysqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event starts transactions
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
        dbapi_connection.execute(f"PRAGMA synchronous = {_synchronous(synchronous)}")
        # After a checkpoint resets it, the WAL is cut back to this: a burst's WAL never stays.
        dbapi_connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # On the driver's connection: every commit's path, where SQLAlchemy's statement
        # machinery cost more than the BEGIN itself. Its errors come unwrapped (see `damaged`).
        driver(connection).execute("BEGIN IMMEDIATE")

    return engine


def driver(connection: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLAlchemy one, for the write path's hot statements:
    inside SQLAlchemy's transaction, without its statement machinery."""
    return connection.connection.driver_connection  # type: ignore[return-value]


def open_reader(path: Path, *, what: str | None = None) -> Engine:
    """A read-only engine over an existing `path`; `what` names it in the error if missing."""
    if not path.is_file():
        raise StoreError(f"{what or path}: {path} does not exist yet")
    uri = f"file:{quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        connection.isolation_level = None
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA query_only = 1")
        connection.set_authorizer(_authorize_read)
        return connection

    return create_engine("sqlite+pysqlite://", creator=connect, poolclass=QueuePool)


def _authorize_read(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        pragma = (arg1 or "").lower()
        if pragma in _DESCRIBE_PRAGMAS or (pragma in _READ_PRAGMAS and arg2 is None):
            return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


_NOTADB, _CORRUPT = 26, 11  # SQLite's primary result codes for a file that is no database


def damaged(exc: BaseException) -> bool:
    """Whether `exc` says the file is not a database or is damaged (SQLITE_NOTADB, _CORRUPT)."""
    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_NOTADB, _CORRUPT)
    return "not a database" in str(orig) or "malformed" in str(orig)


def unusable(path: Path, what: str, exc: BaseException) -> StoreError:
    """The one-line refusal for a database SQLite cannot recover: what, where, why, what to do."""
    reason = str(getattr(exc, "orig", exc))
    return StoreError(
        f"{what} ({path}) is damaged beyond what SQLite recovers on its own ({reason}): move it "
        f"aside (mv {path} {path}.damaged) to start it afresh, or restore it from a backup "
        f"(sqlite3 {path}.damaged .recover may save its rows)"
    )


def _synchronous(value: str) -> str:
    if value.lower() not in ("normal", "full"):
        raise StoreError(f'synchronous must be "normal" or "full", got "{value}"')
    return value.upper()


def quick_check(path: Path, most: int = 100) -> list[str]:
    """What SQLite's `quick_check` finds wrong in the database at `path` (at most `most`
    problems), read-only: [] when its pages are sound. It reads every page, so it takes as long
    as reading the file does. SQLite may give up partway ("database disk image is malformed"):
    that is the last problem, after those it named."""
    found: list[str] = []
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            for (text,) in db.execute(f"PRAGMA quick_check({int(most)})"):
                found.extend(text.splitlines())
    except sqlite3.DatabaseError as exc:
        if not damaged(exc):
            raise
        found.append(str(exc))
    return [] if found == ["ok"] else [line for line in found if not line.startswith("*** in ")]
