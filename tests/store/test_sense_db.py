from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from nerve_core import Workspace
from nerve_core.errors import StoreError
from nerve_store import MigrationError, open_sense_db, open_sense_db_readonly
from nerve_store.sense_db import split_statements


def migration(ws: Workspace, name: str, sql: str, sense: str = "disk") -> None:
    folder = ws.sense_migrations_dir(sense)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


def tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'")).scalars()
        )


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def test_migrations_apply_once_each_in_file_name_order(ws: Workspace) -> None:
    migration(ws, "002_index.sql", "CREATE INDEX samples_ts ON samples (ts);")
    migration(
        ws, "001_samples.sql", "CREATE TABLE samples (ts INTEGER);\nINSERT INTO samples VALUES (1);"
    )
    engine = open_sense_db(ws, "disk")
    engine.dispose()
    engine = open_sense_db(ws, "disk")  # a second open applies nothing again
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM samples")).scalar() == 1
        applied = connection.execute(
            text("SELECT name FROM _nerve_migrations ORDER BY name")
        ).scalars()
        assert list(applied) == ["001_samples.sql", "002_index.sql"]
    engine.dispose()
    assert ws.sense_db("disk").is_file()


def test_a_new_migration_file_is_applied_on_the_next_open(ws: Workspace) -> None:
    migration(ws, "001_a.sql", "CREATE TABLE a (x);")
    open_sense_db(ws, "disk").dispose()
    migration(ws, "002_b.sql", "CREATE TABLE b (x);")
    engine = open_sense_db(ws, "disk")
    assert {"a", "b"} <= tables(engine)
    engine.dispose()


def test_a_failing_migration_rolls_back_and_names_file_line_and_statement(ws: Workspace) -> None:
    migration(ws, "001_ok.sql", "CREATE TABLE ok (x);")
    migration(
        ws,
        "002_bad.sql",
        "CREATE TABLE half (x);\n\n-- this one fails\nINSERT INTO missing VALUES (1);\n",
    )
    with pytest.raises(MigrationError) as raised:
        open_sense_db(ws, "disk")
    message = str(raised.value)
    assert message.startswith("senses/disk/migrations/002_bad.sql:4: no such table: missing")
    assert "INSERT INTO missing" in message
    assert "rolled back" in message
    engine = open_sense_db_readonly(ws, "disk")
    assert "half" not in tables(engine)  # the file's first statement was undone too
    assert "ok" in tables(engine)
    with engine.connect() as connection:
        assert list(connection.execute(text("SELECT name FROM _nerve_migrations")).scalars()) == [
            "001_ok.sql"
        ]
    engine.dispose()


def test_a_sense_without_migrations_gets_an_empty_database(ws: Workspace) -> None:
    engine = open_sense_db(ws, "plain")
    assert tables(engine) == {"_nerve_migrations"}
    engine.dispose()


def test_statements_split_where_sqlite_says_they_end() -> None:
    script = (
        "-- leading comment; with a semicolon\n"
        "CREATE TABLE t (a TEXT DEFAULT ';');\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"
        "  INSERT INTO t VALUES ('x;y');\n"
        "END;\n"
        "SELECT 1"
    )
    statements = split_statements(script)
    assert [s.line for s in statements] == [2, 3, 6]
    assert statements[1].sql.endswith("END;")


WRITE_ATTEMPTS = [
    "INSERT INTO samples VALUES (2)",
    "UPDATE samples SET ts = 0",
    "DELETE FROM samples",
    "DROP TABLE samples",
    "CREATE TABLE x (a)",
    "CREATE TEMP TABLE x (a)",
    "ALTER TABLE samples ADD COLUMN b",
    "CREATE INDEX i ON samples (ts)",
    "WITH doomed AS (SELECT 1) DELETE FROM samples",
    "REPLACE INTO samples VALUES (3)",
    "INSERT INTO samples SELECT * FROM samples",
    "PRAGMA query_only = 0",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "PRAGMA writable_schema = 1",
    "ATTACH DATABASE ':memory:' AS other",
    "ATTACH DATABASE 'elsewhere.db' AS other",
    "DETACH DATABASE main",
    "VACUUM",
    "VACUUM INTO 'copy.db'",  # relative: a copy would land in the test's own folder
    "REINDEX",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "SELECT load_extension('anything')",
    "SELECT 1; DELETE FROM samples",
]

# What each of the read-only handle's guards says when it refuses (the authorizer, `mode=ro`,
# `query_only`, the driver's one-statement rule); any other error is not a refusal.
REFUSED_BY_A_GUARD = (
    r"not authorized|authorization denied|attempt to write a readonly database"
    r"|one statement at a time"
)


@pytest.mark.parametrize("statement", WRITE_ATTEMPTS)
def test_a_read_only_handle_refuses_every_write_form(
    ws: Workspace, statement: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ws.root)  # where a relative VACUUM INTO or ATTACH would write
    migration(ws, "001.sql", "CREATE TABLE samples (ts INTEGER);\nINSERT INTO samples VALUES (1);")
    open_sense_db(ws, "disk").dispose()
    before = ws.sense_db("disk").read_bytes()
    engine = open_sense_db_readonly(ws, "disk")
    with engine.connect() as connection:
        with pytest.raises((DBAPIError, ProgrammingError), match=REFUSED_BY_A_GUARD):
            connection.execute(text(statement))
        assert connection.execute(text("SELECT count(*) FROM samples")).scalar() == 1
    engine.dispose()
    assert ws.sense_db("disk").read_bytes() == before
    assert not (ws.root / "copy.db").exists()
    assert not (ws.root / "elsewhere.db").exists()


def test_a_read_only_handle_still_reads_and_describes(ws: Workspace) -> None:
    migration(ws, "001.sql", "CREATE TABLE samples (ts INTEGER);")
    open_sense_db(ws, "disk").dispose()
    engine = open_sense_db_readonly(ws, "disk")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA table_info(samples)")).all()[0][1] == "ts"
        counting = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)"
        assert connection.execute(text(f"{counting} SELECT count(*) FROM n")).scalar() == 3
    engine.dispose()


def test_reading_a_sense_that_has_no_database_yet_is_a_clear_error(ws: Workspace) -> None:
    with pytest.raises(StoreError, match='the database of sense "ghost"'):
        open_sense_db_readonly(ws, "ghost")


# Refused before the authorizer is asked: sqlite3 runs one statement a call.
BY_THE_DRIVER = {"SELECT 1; DELETE FROM samples"}


@pytest.mark.parametrize("statement", WRITE_ATTEMPTS)
def test_the_authorizer_alone_refuses_every_write_form_it_is_asked_about(
    tmp_path: Path, statement: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a writable connection, so that neither `mode=ro` nor `query_only` hides it: the refusal
    is the authorizer's own ("not authorized" / "authorization denied")."""
    from nerve_store._sqlite import _authorize_read

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "samples.db"
    with contextlib.closing(sqlite3.connect(path)) as setup, setup:
        setup.executescript(
            # an index, so that REINDEX has something to write (with none it writes nothing)
            "CREATE TABLE samples (ts INTEGER); CREATE INDEX samples_ts ON samples (ts);"
            " INSERT INTO samples VALUES (1);"
        )
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.set_authorizer(_authorize_read)
        if statement in BY_THE_DRIVER:
            with pytest.raises(sqlite3.ProgrammingError, match="one statement at a time"):
                raw.execute(statement)
        else:
            with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|authorization denied"):
                raw.execute(statement)
        assert raw.execute("SELECT count(*) FROM samples").fetchone() == (1,)
    finally:
        raw.close()
    assert not (tmp_path / "copy.db").exists()
    assert not (tmp_path / "elsewhere.db").exists()
