"""nerve as a systemd `Type=notify` service: the daemon run in the foreground (`nerve daemon
run`) with `NOTIFY_SOCKET` and `WATCHDOG_USEC` set as systemd sets them, the notifications read
from a real datagram socket as systemd reads them: ready once it serves, watchdog pings from the
kernel's loop (none while it is stopped), stopping at SIGTERM; and `nerve start` naming the
daemon's pid, not its own, as the service's main process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cli.conftest import NERVE, run_nerve
from .conftest import scratch_folder

pytestmark = pytest.mark.slow

WATCHDOG_S = 0.4  # systemd's WatchdogSec: a ping every 0.2 s


@pytest.fixture
def service() -> Iterator[tuple[Path, socket.socket]]:
    """A workspace (one sense every 100 ms), and the socket systemd would read notifications on."""
    with scratch_folder() as folder:
        assert run_nerve("init", str(folder / "ws"), cwd=folder).code == 0
        root = folder / "ws"
        (root / "nerve.yaml").write_text(
            "senses:\n  tick: {}\nreflexes:\n  - sense: tick\n    interval: 100ms\n"
        )
        (root / "senses/tick").mkdir()
        (root / "senses/tick/compute.py").write_text("def compute(ctx):\n    return 1\n")
        assert run_nerve("validate", cwd=root).code == 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(folder / "notify.sock"))
            yield root, notify


def environment(notify: socket.socket, **more: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "NERVE_ROOT"}
    env |= {"NOTIFY_SOCKET": notify.getsockname(), "NO_COLOR": "1", **more}
    return env


def received(notify: socket.socket, timeout: float) -> dict[str, str] | None:
    """The next notification's fields, or None if none comes within `timeout`."""
    notify.settimeout(timeout)
    try:
        data = notify.recv(4096)
    except TimeoutError:
        return None
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def wait_for_field(notify: socket.socket, key: str, timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        fields = received(notify, left)
        if fields is not None and key in fields:
            return fields
    raise AssertionError(f"no {key} notification within {timeout:g} s")


def pings(notify: socket.socket, seconds: float) -> int:
    """How many WATCHDOG=1 arrive in `seconds`."""
    count, deadline = 0, time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        fields = received(notify, left)
        count += fields is not None and fields.get("WATCHDOG") == "1"
    return count


@contextlib.contextmanager
def running(args: list[str], root: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        args, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            yield process
        finally:
            process.kill()


def test_a_notify_service_is_ready_once_it_serves_pings_its_watchdog_and_says_it_stops(
    service: tuple[Path, socket.socket],
) -> None:
    root, notify = service
    env = environment(notify, WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)))
    with running([str(NERVE), "daemon", "run"], root, env) as daemon:
        ready = wait_for_field(notify, "READY")
        assert ready == {
            "READY": "1",
            "STATUS": f"serving {root}: 1 sense",
            "MAINPID": str(daemon.pid),  # `nerve daemon run` is the daemon itself
        }
        status = run_nerve("status", "--json", cwd=root)  # it serves once it says so
        assert status.code == 0, status.err
        assert json.loads(status.out)["pid"] == daemon.pid
        assert pings(notify, 2.0) >= 5  # ten are due; a busy machine delays some

        workers = [w["pid"] for w in json.loads(status.out)["workers"] if w["pid"]]
        assert workers
        for pid in workers:  # the variables were the daemon's: no worker inherits them
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert not any(var.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_")) for var in environ)

        daemon.send_signal(signal.SIGSTOP)  # a kernel that hangs stops pinging
        try:
            time.sleep(0.3)
            pings(notify, 0.1)  # what was sent before it stopped
            assert pings(notify, 1.5) == 0
        finally:
            daemon.send_signal(signal.SIGCONT)
        assert pings(notify, 2.0) >= 1

        daemon.send_signal(signal.SIGTERM)
        assert wait_for_field(notify, "STOPPING") == {"STOPPING": "1", "STATUS": "stopping"}
        assert daemon.wait(20) == 0
    assert not (root / "nerve.pid").exists()


def test_nerve_start_names_the_daemon_as_the_main_process(
    service: tuple[Path, socket.socket],
) -> None:
    root, notify = service
    started = run_nerve("start", cwd=root, env={"NOTIFY_SOCKET": notify.getsockname()})
    try:
        assert started.code == 0, started.err
        ready = wait_for_field(notify, "READY", timeout=5)  # sent before `start` returned
        assert ready["MAINPID"] == (root / "nerve.pid").read_text().strip()
        assert f"(pid {ready['MAINPID']})" in started.out
        assert pings(notify, 1.5) == 0  # no WATCHDOG_USEC: no pings
    finally:
        assert run_nerve("stop", cwd=root).code == 0


def test_without_notify_socket_nothing_is_sent_and_it_runs_as_a_foreground_daemon(
    service: tuple[Path, socket.socket],
) -> None:
    root, notify = service
    env = {key: value for key, value in environment(notify).items() if key != "NOTIFY_SOCKET"}
    with running([str(NERVE), "daemon", "run"], root, env) as daemon:
        deadline = time.monotonic() + 30
        while run_nerve("status", cwd=root).code != 0:
            assert daemon.poll() is None, "the daemon exited"
            assert time.monotonic() < deadline, "the daemon did not answer"
            time.sleep(0.1)
        assert received(notify, 0.5) is None
        assert run_nerve("start", cwd=root).code != 0  # one nerve per workspace
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        assert daemon.stdout is not None
        assert daemon.stdout.read() == ""  # its lines are in logs/nerve.log
    assert "daemon stopped" in (root / "logs/nerve.log").read_text()


def test_the_status_says_what_is_wrong_as_it_goes_wrong(
    service: tuple[Path, socket.socket],
) -> None:
    """A sense whose module kills its worker at import: once its group has crash-looped, the
    status systemd shows names it, as `nerve status` does."""
    root, notify = service
    (root / "nerve.yaml").write_text(
        "senses:\n  tick: {}\n  doomed: {group: fragile}\n"
        "reflexes:\n  - sense: tick\n    interval: 100ms\n"
    )
    (root / "senses/doomed").mkdir()
    (root / "senses/doomed/compute.py").write_text("import os\nos._exit(3)\n")
    with running([str(NERVE), "daemon", "run"], root, environment(notify)) as daemon:
        ready = wait_for_field(notify, "READY")
        assert ready["STATUS"] in (f"serving {root}: 2 senses", crash_looped("fragile"))
        if ready["STATUS"] != crash_looped("fragile"):
            assert wait_for_field(notify, "STATUS")["STATUS"] == crash_looped("fragile")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0


def crash_looped(group: str) -> str:
    return f"crash-looped, not respawning: {group} (see logs/nerve.log)"


def test_sighup_reloads_the_daemon_as_nerve_reload_and_says_so_to_systemd(
    service: tuple[Path, socket.socket],
) -> None:
    """`systemctl reload` (or `Type=notify-reload`) sends SIGHUP: with `reload: manual`, what
    waits is applied, `RELOADING=1` (with its monotonic time) then `READY=1`; a nerve.yaml
    broken meanwhile is said in the log and the running configuration stays."""
    root, notify = service
    config = root / "nerve.yaml"
    config.write_text("reload: manual\n" + config.read_text())
    with running([str(NERVE), "daemon", "run"], root, environment(notify)) as daemon:
        wait_for_field(notify, "READY")
        (root / "senses/tock").mkdir()
        (root / "senses/tock/compute.py").write_text("def compute(ctx):\n    return 2\n")
        config.write_text(config.read_text().replace("  tick: {}\n", "  tick: {}\n  tock: {}\n"))
        sent = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        daemon.send_signal(signal.SIGHUP)
        reloading = wait_for_field(notify, "RELOADING")
        assert reloading["STATUS"] == "reloading"
        assert sent <= int(reloading["MONOTONIC_USEC"]) <= sent + 30_000_000
        assert wait_for_field(notify, "READY")["STATUS"] == f"serving {root}: 2 senses"
        status = json.loads(run_nerve("status", "--json", cwd=root).out)
        assert (status["pid"], status["senseNames"]) == (daemon.pid, ["tick", "tock"])

        config.write_text(config.read_text() + "nonsense: [\n")
        daemon.send_signal(signal.SIGHUP)
        wait_for_field(notify, "RELOADING")
        wait_for_field(notify, "READY")
        assert json.loads(run_nerve("status", "--json", cwd=root).out)["senseNames"] == [
            "tick",
            "tock",
        ]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
    log = (root / "logs/nerve.log").read_text()
    assert "nerve.yaml changed and is invalid; the running config stays:\nnerve.yaml:9:" in log
