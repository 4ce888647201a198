"""What a compute gets in `ctx`, and where its returns go."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from nerve_core import LogType
from nerve_store import BlobStore, LogStore

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio


async def test_ctx_offers_db_peer_blobs_logs_and_log(ws: Callable[..., Path]) -> None:
    root = ws(
        """
        senses:
          writer: {group: a}
          reader: {group: b}
        reflexes:
          - sense: reader
            on: [writer]
        """,
        {
            "writer": (
                "from sqlalchemy import text\n"
                "def compute(ctx):\n"
                "    with ctx.db.begin() as db:\n"
                "        db.execute(text('INSERT INTO notes (body) VALUES (:b)'), {'b': 'hello'})\n"
                "    digest = ctx.blobs.write(b'a blob')\n"
                "    ctx.log('info', 'wrote a note', digest=digest, obj=object())\n"
                "    return {'digest': digest}\n"
            ),
            "reader": (
                "from sqlalchemy import text\n"
                "def compute(ctx):\n"
                "    with ctx.peer('writer').connect() as db:\n"
                "        notes = list(db.execute(text('SELECT body FROM notes')).scalars())\n"
                "        try:\n"
                "            db.execute(text('DELETE FROM notes'))\n"
                "            refused = None\n"
                "        except Exception as error:\n"
                "            refused = str(error.orig)\n"
                "    signals = ctx.logs.logs(source='writer', type='signal')\n"
                "    blob = ctx.blobs.read(ctx.signal.payload['digest']).decode()\n"
                "    return {'notes': notes, 'write_refused': refused, 'blob': blob,\n"
                "            'logged': len(signals), 'name': ctx.name}\n"
            ),
        },
        {"senses/writer/migrations/001_notes.sql": "CREATE TABLE notes (body TEXT);\n"},
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("writer")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "reader"))
    payload = recorder.of(LogType.SIGNAL, "reader")[0].payload
    assert payload["notes"] == ["hello"]
    assert payload["write_refused"] == "not authorized"  # the read-only guard's own refusal
    assert payload["blob"] == "a blob"
    assert payload["name"] == "reader"
    [note] = recorder.of(LogType.SENSE_LOG, "writer")
    assert note.payload["level"] == "info"
    assert note.payload["message"] == "wrote a note"
    assert note.payload["fields"]["obj"].startswith("<object object")
    digest = recorder.of(LogType.SIGNAL, "writer")[0].payload["digest"]
    assert BlobStore(root / "data/blobs").read(digest) == b"a blob"


async def test_async_computes_run_and_return(ws: Callable[..., Path]) -> None:
    root = ws(
        "senses:\n  waiter: {}\n",
        {
            "waiter": "import asyncio\nasync def compute(ctx):\n    await asyncio.sleep(0.01)\n    return 'awaited'\n"
        },
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("waiter")
        kernel.trigger_sense("waiter")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "waiter"))
    assert recorder.of(LogType.SIGNAL, "waiter")[0].payload == "awaited"


async def test_a_directive_launches_a_declared_workflow_and_logs_an_undeclared_one(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          launcher: {}
          stray: {}
          confused: {}
        workflows:
          cleanup: {}
        """,
        {
            "launcher": "def compute(ctx):\n    return {'path': '/', 'workflow': 'cleanup|10|Disk | full'}\n",
            "stray": "def compute(ctx):\n    return {'workflow': 'nowhere|3|x'}\n",
            "confused": "def compute(ctx):\n    return {'workflow': 'cleanup|many|x', 'n': 1}\n",
        },
    )
    async with running(root) as (kernel, recorder):
        for sense in ("launcher", "stray", "confused"):
            kernel.trigger_sense(sense)
        await wait_until(lambda: len(recorder.of(LogType.WORKFLOW_LAUNCH)) == 2)
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "confused"))
    [launch] = recorder.of(LogType.WORKFLOW_LAUNCH, "launcher")
    assert launch.payload["workflow"] == "cleanup"
    assert launch.payload["maxRounds"] == 10
    assert launch.payload["prompt"] == "Disk | full"
    assert launch.payload["payload"] == {"path": "/"}
    assert "error" not in launch.payload
    [stray] = recorder.of(LogType.WORKFLOW_LAUNCH, "stray")
    assert "not declared" in stray.payload["error"]
    assert recorder.of(LogType.SIGNAL, "launcher") == []
    assert recorder.of(LogType.SIGNAL, "confused")[0].payload == {"n": 1}
    assert (
        "positive integer"
        in recorder.of(LogType.DIRECTIVE_INVALID, "confused")[0].payload["reason"]
    )


async def test_every_row_the_kernel_records_is_committed_to_logs_db(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  a: {}\nreflexes:\n  - sense: a\n    interval: 50ms\n",
        {"a": "def compute(ctx):\n    return 1\n"},
    )
    async with running(root) as (_, recorder):
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "a")) >= 10)
    with LogStore.open_readonly(root / "data/logs.db") as store:
        stored = [(r.type, r.source) for r in store.logs(limit=10_000)]
    assert stored == [(str(r.type), r.source) for r in recorder.rows]
    assert stored[0] == ("kernel.start", "kernel")
    assert stored[-1] == ("kernel.stop", "kernel")


async def test_a_graceful_stop_lets_the_compute_in_flight_finish_and_log(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  slow: {}\n",
        {
            "slow": "import time\ndef compute(ctx):\n    print('slow begins', flush=True)\n"
            "    time.sleep(1)\n    return 'done'\n"
        },
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("slow")
        await wait_until(lambda: ("group:default", "slow begins") in recorder.output)
        assert recorder.computes == []  # in flight, not done
        kernel.stop()
        with anyio.fail_after(15):
            await kernel.stopped.wait()
    assert recorder.of(LogType.SIGNAL, "slow")[0].payload == "done"
    assert recorder.of(LogType.WORKER_EXIT)[0].payload["reason"] == "stopped"
    assert recorder.of(LogType.WORKER_EXIT)[0].payload["code"] == 0


async def test_an_observer_that_raises_never_touches_the_kernel(ws: Callable[..., Path]) -> None:
    from nerve_core import parse_nerve_config
    from nerve_daemon.kernel import Kernel, KernelOptions

    root = ws("senses:\n  a: {}\n", {"a": "def compute(ctx):\n    return 1\n"})

    def broken_observer(row: object) -> None:
        raise RuntimeError("the observer broke")

    kernel = Kernel(
        parse_nerve_config((root / "nerve.yaml").read_text()).value,
        root,  # type: ignore[union-attr]
        KernelOptions(on_row=broken_observer),
    )
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        kernel.trigger_sense("a")
        await wait_until(lambda: kernel.list_senses()[0].computes == 1)
        kernel.stop()
    with LogStore.open_readonly(root / "data/logs.db") as store:
        assert [r.type for r in store.logs(type="signal")] == ["signal"]


async def test_with_archive_after_set_old_log_rows_are_archived_at_start(
    ws: Callable[..., Path],
) -> None:
    from nerve_core import LogType as Type
    from nerve_store import LogRow, read_archive_day

    root = ws(
        "store:\n  archive_after: 1d\nsenses:\n  a: {}\n",
        {"a": "def compute(ctx):\n    return 1\n"},
    )
    with LogStore.open(root / "data/logs.db") as store:  # rows from long ago
        store.append(*(LogRow("a", Type.SIGNAL, {"n": n}, ts=86_400_000 * 3 + n) for n in range(5)))
    async with running(root) as (_, recorder):
        await wait_until(lambda: recorder.of(LogType.STORE_ARCHIVE))
    assert recorder.of(LogType.STORE_ARCHIVE)[0].payload == {"days": ["1970-01-04"], "rows": 5}
    assert len(list(read_archive_day(root / "data/archive/logs/1970-01-04.jsonl"))) == 5
