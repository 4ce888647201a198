"""The daemon IPC socket, driven with raw lines as any client would."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import time
from pathlib import Path

import anyio
import orjson
import pytest

from nerve_core import parse_nerve_config
from nerve_daemon.control.ipc import SocketPathTooLong, check_socket_path
from nerve_daemon.kernel import Kernel, KernelOptions

from .conftest import FAST_POLICY, build_workspace, wait_until

pytestmark = pytest.mark.anyio

ONE_MEBIBYTE = 1 << 20  # DESIGN.md's limit, pinned here: not read from the code under test


def kernel_for(root: Path) -> Kernel:
    config = parse_nerve_config((root / "nerve.yaml").read_text())
    assert config.ok
    return Kernel(config.value, root, KernelOptions(group_policy=FAST_POLICY, serve_ipc=True))


async def exchange(path: Path, *lines: bytes) -> list[dict[str, object]]:
    """Send `lines` on one connection; return one parsed response per line."""
    async with await anyio.connect_unix(path) as stream:
        for line in lines:
            await stream.send(line + b"\n")
        buffered = anyio.streams.buffered.BufferedByteReceiveStream(stream)
        return [orjson.loads(await buffered.receive_until(b"\n", 1 << 20)) for _ in lines]


async def test_every_request_type_is_answered_with_its_id_echoed(short_root: Path) -> None:
    kernel = kernel_for(short_root)
    sock = short_root / "nerve.sock"
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        health, senses, trigger, launch = await exchange(
            sock,
            b'{"type":"health","id":1}',
            b'{"type":"list-senses","id":"two"}',
            b'{"type":"trigger-sense","sense":"a","id":3}',
            b'{"type":"trigger-workflow","workflow":"slow","prompt":"30","maxRounds":3,"id":4}',
        )
        assert (health["ok"], health["id"], health["pid"]) == (True, 1, os.getpid())
        assert {w["name"] for w in health["workers"]} == {"fork-server", "default", "slow"}  # type: ignore[union-attr]
        assert senses["id"] == "two"
        assert [s["name"] for s in senses["senses"]] == ["a"]  # type: ignore[union-attr]
        assert trigger == {"ok": True, "id": 3}
        assert (launch["ok"], launch["id"], launch["status"]) == (True, 4, "started")
        [cancel] = await exchange(
            sock, orjson.dumps({"type": "cancel-workflow", "runId": launch["runId"], "id": 5})
        )
        assert cancel == {"ok": True, "id": 5, "status": "cancelled"}
        await wait_until(lambda: kernel.list_senses()[0].computes == 1)
        kernel.stop()
    assert not sock.exists()  # removed on stop


async def test_malformed_lines_get_errors_and_the_connection_goes_on(short_root: Path) -> None:
    kernel = kernel_for(short_root)
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        responses = await exchange(
            short_root / "nerve.sock",
            b"not json",
            b'{"type":"reboot","id":9}',
            b'{"type":"trigger-sense","sense":"ghost"}',
            b'{"type":"trigger-workflow","workflow":"ghost"}',
            b'{"type":"cancel-workflow","runId":"nope"}',
            b'{"type":"health"}',
        )
        kernel.stop()
    codes = [r["error"]["code"] if not r["ok"] else "ok" for r in responses]  # type: ignore[index]
    assert codes == [
        "bad_request",
        "unknown_type",
        "unknown_sense",
        "unknown_workflow",
        "unknown_run",
        "ok",
    ]
    assert responses[1]["id"] == 9


async def test_an_error_nobody_expected_is_answered_internal_and_the_connection_goes_on(
    short_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose handler raises what no code path expects (here `list-senses`, broken
    on purpose): that request is answered `internal`, and the same connection, the socket and
    the kernel serve on."""
    kernel = kernel_for(short_root)

    def broken() -> object:
        raise RuntimeError("a bug in list-senses")

    monkeypatch.setattr(kernel, "list_senses", broken)
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        broke, health = await exchange(
            short_root / "nerve.sock", b'{"type":"list-senses","id":7}', b'{"type":"health"}'
        )
        [again] = await exchange(short_root / "nerve.sock", b'{"type":"health","id":8}')
        kernel.stop()
    error = broke["error"]
    assert (broke["ok"], broke["id"]) == (False, 7)
    assert (error["code"], error["message"]) == (  # type: ignore[index]
        "internal",
        "the request failed: RuntimeError: a bug in list-senses",
    )
    assert (health["ok"], again["ok"], again["id"]) == (True, True, 8)


async def test_an_endless_line_is_refused_at_one_mebibyte_and_the_daemon_serves_on(
    short_root: Path,
) -> None:
    """A client that sends and never ends its line is refused once 1 MiB has come, without the
    newline: the server holds no more than that of anyone's line."""
    kernel = kernel_for(short_root)
    sock = short_root / "nerve.sock"
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        async with await anyio.connect_unix(sock) as stream:
            chunk = b"x" * 65536

            async def send_without_end() -> None:  # until refused: 1 MiB and a chunk at most
                with contextlib.suppress(anyio.BrokenResourceError, OSError):
                    for _ in range(ONE_MEBIBYTE // len(chunk) + 1):
                        await stream.send(chunk)

            group.start_soon(send_without_end)
            with anyio.fail_after(10):  # a server that waits for more fails here, not by hanging
                reply = await anyio.streams.buffered.BufferedByteReceiveStream(
                    stream
                ).receive_until(b"\n", 1 << 16)
        assert orjson.loads(reply)["error"]["code"] == "too_large"
        [health] = await exchange(sock, b'{"type":"health"}')
        assert health["ok"] is True
        kernel.stop()


async def test_many_concurrent_clients_and_a_silent_one_do_not_block_each_other(
    short_root: Path,
) -> None:
    kernel = kernel_for(short_root)
    sock = short_root / "nerve.sock"
    answers: list[dict[str, object]] = []
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        silent = await anyio.connect_unix(sock)  # connects and never sends
        async with anyio.create_task_group() as clients:
            for n in range(200):

                async def ask(n: int = n) -> None:
                    answers.extend(await exchange(sock, orjson.dumps({"type": "health", "id": n})))

                clients.start_soon(ask)
        await silent.aclose()
        kernel.stop()
    assert sorted(a["id"] for a in answers) == list(range(200))  # type: ignore[type-var]


async def test_a_connection_beyond_the_cap_is_refused_at_once_and_the_rest_serve_on(
    short_root: Path,
) -> None:
    """512 silent clients hold every connection the daemon takes; the 513th is answered
    `unavailable` and closed, not left waiting; once one leaves, a new one is served."""
    from nerve_daemon.control.ipc import MAX_CONNECTIONS

    assert MAX_CONNECTIONS == 512
    kernel = kernel_for(short_root)
    path = short_root / "nerve.sock"
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        held = [await anyio.connect_unix(path) for _ in range(MAX_CONNECTIONS)]
        try:
            await wait_until(lambda: kernel_connections(kernel) == MAX_CONNECTIONS, timeout=30)
            with anyio.fail_after(10):
                async with await anyio.connect_unix(path) as extra:
                    answer = orjson.loads(await extra.receive())
            assert (answer["ok"], answer["error"]["code"]) == (False, "unavailable")
            assert answer["error"]["message"] == "too many connections"
            await held.pop().aclose()
            await wait_until(lambda: kernel_connections(kernel) < MAX_CONNECTIONS, timeout=30)
            with anyio.fail_after(10):
                [health] = await exchange(path, b'{"type":"health"}')
            assert health["ok"] is True
        finally:
            for stream in held:
                await stream.aclose()
        kernel.stop()


def kernel_connections(kernel: Kernel) -> int:
    """Connections the daemon's socket server holds now."""
    assert kernel.ipc_server is not None
    return kernel.ipc_server.open_connections


async def test_the_socket_is_private_to_its_user(short_root: Path) -> None:
    kernel = kernel_for(short_root)
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        mode = stat.S_IMODE((short_root / "nerve.sock").stat().st_mode)
        kernel.stop()
    assert mode == 0o600


@pytest.mark.parametrize("left", ["socket", "file"])
async def test_a_stale_socket_file_is_replaced(short_root: Path, left: str) -> None:
    """Whatever sits at nerve.sock while the daemon holds the workspace lock is stale: a socket
    nobody listens on (what a killed daemon leaves) or a plain file (a restored backup)."""
    if left == "socket":
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(short_root / "nerve.sock"))
        stale.close()
    else:
        (short_root / "nerve.sock").write_text("not a socket")
    kernel = kernel_for(short_root)
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        [health] = await exchange(short_root / "nerve.sock", b'{"type":"health"}')
        kernel.stop()
    assert health["ok"] is True


async def test_a_workspace_path_too_long_for_a_socket_is_a_clear_error(tmp_path: Path) -> None:
    root = build_workspace(tmp_path / ("deep" * 30) / "ws", "senses: {}\n", {})
    kernel = kernel_for(root)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the group wraps it
        async with anyio.create_task_group() as group:
            await group.start(kernel.run)
    found = (
        raised.value.exceptions[0] if isinstance(raised.value, BaseExceptionGroup) else raised.value
    )
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    assert isinstance(found, SocketPathTooLong)
    assert "limited to 107" in str(found)


def test_a_socket_path_of_107_bytes_is_accepted_and_one_of_108_refused(tmp_path: Path) -> None:
    base = str(tmp_path / "s")
    at_limit = Path(base + "x" * (107 - len(base)))
    check_socket_path(at_limit)  # sun_path holds 108 bytes, the last a NUL
    with pytest.raises(SocketPathTooLong, match="is 108 bytes; a Unix socket path is limited"):
        check_socket_path(Path(str(at_limit) + "x"))


async def test_delayed_triggers_over_the_socket_are_listed_and_cancelled(short_root: Path) -> None:
    kernel = kernel_for(short_root)
    sock = short_root / "nerve.sock"
    due = (int(time.time()) + 3600) * 1000
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        sense, run, unknown_sense, unknown_workflow = await exchange(
            sock,
            orjson.dumps({"type": "trigger-sense", "sense": "a", "at": due, "id": 1}),
            orjson.dumps({"type": "trigger-workflow", "workflow": "slow", "at": due + 1}),
            orjson.dumps({"type": "trigger-sense", "sense": "nope", "at": due}),
            orjson.dumps({"type": "trigger-workflow", "workflow": "nope", "at": due}),
        )
        assert sense["id"] == 1
        assert sense["timer"]["kind"] == "sense"  # type: ignore[index]
        assert (sense["timer"]["target"], sense["timer"]["due"]) == ("a", due)  # type: ignore[index]
        assert str(sense["timer"]["timerId"]).startswith("d-")  # type: ignore[index]
        assert run["timer"]["request"] == {"prompt": "", "maxRounds": None, "payload": None}  # type: ignore[index]
        assert unknown_sense["error"]["code"] == "unknown_sense"  # type: ignore[index]
        assert unknown_workflow["error"]["code"] == "unknown_workflow"  # type: ignore[index]
        timer_id = sense["timer"]["timerId"]  # type: ignore[index]
        listed, cancelled, again, left = await exchange(
            sock,
            b'{"type":"list-timers"}',
            orjson.dumps({"type": "cancel-timer", "timerId": timer_id}),
            orjson.dumps({"type": "cancel-timer", "timerId": timer_id}),
            b'{"type":"list-timers"}',
        )
        assert [t["timerId"] for t in listed["timers"]] == [  # type: ignore[union-attr, index]
            timer_id,
            run["timer"]["timerId"],  # type: ignore[index]
        ]
        assert cancelled["timer"]["timerId"] == timer_id  # type: ignore[index]
        assert again["error"]["code"] == "unknown_timer"  # type: ignore[index]
        assert [t["timerId"] for t in left["timers"]] == [run["timer"]["timerId"]]  # type: ignore[union-attr, index]
        kernel.stop()


def padded_trigger(size: int) -> bytes:
    """A valid `trigger-workflow` request of exactly `size` bytes (its newline not counted): its
    prompt is "0" and spaces (the sleeper workflow sleeps 0 s)."""
    head, tail = b'{"type":"trigger-workflow","workflow":"slow","prompt":"0', b'"}'
    return head + b" " * (size - len(head) - len(tail)) + tail


async def test_a_line_just_under_one_mebibyte_is_answered_and_one_just_over_is_refused(
    short_root: Path,
) -> None:
    kernel = kernel_for(short_root)
    sock = short_root / "nerve.sock"
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        with anyio.fail_after(30):  # a server that never answers fails here, not by hanging
            [under] = await exchange(sock, padded_trigger(ONE_MEBIBYTE - 64))
            [over] = await exchange(sock, padded_trigger(ONE_MEBIBYTE + 64))
            [after] = await exchange(sock, b'{"type":"health","id":1}')
        kernel.stop()
    assert (under["ok"], under["status"]) == (True, "started")
    assert over["error"]["code"] == "too_large"  # type: ignore[index]
    assert (after["ok"], after["id"]) == (True, 1)


async def test_explain_of_what_does_not_exist_names_what_is_unknown(short_root: Path) -> None:
    kernel = kernel_for(short_root)
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        answers = await exchange(
            short_root / "nerve.sock",
            b'{"type":"explain","what":"sense","name":"ghost","id":1}',
            b'{"type":"explain","what":"run","name":"nope","id":2}',
            b'{"type":"explain","what":"signal","name":"nope","id":3}',
            b'{"type":"explain","what":"sense","name":"a","id":4}',
        )
        kernel.stop()
    codes = [a["error"]["code"] if not a["ok"] else "ok" for a in answers]  # type: ignore[index]
    assert codes == ["unknown_sense", "unknown_run", "unknown_signal", "ok"]
    assert answers[3]["explanation"]["sense"] == "a"  # type: ignore[index]
