"""IPC: `health` requests per second on one connection and p99 latency with 32 clients, over
the daemon's socket, against a bare anyio echo server on a Unix socket in the same run.

    .venv/bin/python bench/ipc.py [--quick]

Goals: >= 5,000 requests/s on one connection; p99 <= 2 ms with 32 clients.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentile, print_table, write_workspace

QUICK = "--quick" in sys.argv
SECONDS = 1.0 if QUICK else 5.0
CLIENTS = 32
REQUEST = b'{"type":"health"}\n'
NERVE = str(Path(sys.executable).parent / "nerve")


async def one_connection(path: Path) -> float:
    async with await anyio.connect_unix(path) as stream:
        reader = BufferedByteReceiveStream(stream)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < SECONDS:
            await stream.send(REQUEST)
            await reader.receive_until(b"\n", 1 << 20)
            count += 1
        return count / (time.perf_counter() - started)


async def many_clients(path: Path) -> list[float]:
    latencies: list[float] = []

    async def client() -> None:
        async with await anyio.connect_unix(path) as stream:
            reader = BufferedByteReceiveStream(stream)
            deadline = time.perf_counter() + SECONDS
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                await stream.send(REQUEST)
                await reader.receive_until(b"\n", 1 << 20)
                latencies.append((time.perf_counter() - sent) * 1000)

    async with anyio.create_task_group() as group:
        for _ in range(CLIENTS):
            group.start_soon(client)
    return latencies


def echo_server(path: str) -> None:
    async def serve() -> None:
        async def handle(stream: anyio.abc.SocketStream) -> None:
            reader = BufferedByteReceiveStream(stream)
            async with stream:
                while True:
                    try:
                        line = await reader.receive_until(b"\n", 1 << 20)
                    except (anyio.EndOfStream, anyio.IncompleteRead):
                        return
                    await stream.send(line + b"\n")

        listener = await anyio.create_unix_listener(path)
        await listener.serve(handle)

    anyio.run(serve)


def measure(path: Path) -> tuple[float, list[float]]:
    return anyio.run(one_connection, path), anyio.run(many_clients, path)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="nv-bench-", dir="/tmp"))
    root = write_workspace(
        folder / "ws", "senses:\n  a: {}\n", {"a": "def compute(ctx):\n    return 1\n"}
    )
    subprocess.run([NERVE, "start", "--root", str(root)], check=True, stdout=subprocess.DEVNULL)
    echo_path = folder / "echo.sock"
    echo = multiprocessing.get_context("spawn").Process(
        target=echo_server, args=(str(echo_path),), daemon=True
    )
    echo.start()
    try:
        while not echo_path.exists():
            time.sleep(0.05)
        nerve_rate, nerve_latencies = measure(root / "nerve.sock")
        echo_rate, echo_latencies = measure(echo_path)
    finally:
        echo.kill()
        subprocess.run([NERVE, "stop", "--root", str(root)], check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(folder)
    p99, echo_p99 = percentile(nerve_latencies, 99), percentile(echo_latencies, 99)
    print_table(
        "daemon IPC, `health` over nerve.sock",
        [
            (
                "requests/s, one connection",
                f"{nerve_rate:,.0f}",
                f"{echo_rate:,.0f} bare echo",
                f"{nerve_rate / echo_rate:.2f}",
                ">= 5,000",
                "yes" if nerve_rate >= 5000 else "NO",
            ),
            (
                f"p99 ms, {CLIENTS} clients",
                f"{p99:.2f}",
                f"{echo_p99:.2f} bare echo",
                f"{p99 / echo_p99:.1f}",
                "<= 2",
                "yes" if p99 <= 2 else "NO",
            ),
        ],
    )


if __name__ == "__main__":
    main()
