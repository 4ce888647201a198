"""systemd's notification variables as the daemon reads them: taken out of the environment,
an abstract socket (`@name`), a watchdog meant for another process, a socket that is gone."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from nerve_daemon.control.notify import Notifier


def test_the_variables_are_taken_out_and_an_abstract_socket_is_reached() -> None:
    name = f"nerve-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        environ = {"NOTIFY_SOCKET": f"@{name}", "WATCHDOG_USEC": "30000000", "PATH": "/bin"}
        notify = Notifier.from_environment(environ)
        assert environ == {"PATH": "/bin"}
        assert notify.watchdog_s == 30.0
        notify.ready("serving here")
        assert listener.recv(4096).decode().splitlines() == [
            "READY=1",
            "STATUS=serving here",
            f"MAINPID={os.getpid()}",
        ]
        notify.close()


@pytest.mark.parametrize(
    ("watchdog_pid", "usec", "expected"),
    [
        ("1", "30000000", None),  # meant for another process (pid 1)
        ("", "0", None),
        ("", "soon", None),
        ("ours", "2000000", 2.0),
    ],
)
def test_a_watchdog_is_kept_only_when_it_is_meant_for_this_process(
    watchdog_pid: str, usec: str, expected: float | None
) -> None:
    watchdog_pid = str(os.getpid()) if watchdog_pid == "ours" else watchdog_pid
    environ = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": usec, "WATCHDOG_PID": watchdog_pid}
    assert Notifier.from_environment(environ).watchdog_s == expected
    assert Notifier.from_environment({"WATCHDOG_USEC": "2000000"}).watchdog_s is None


def test_a_socket_that_is_gone_is_said_once_and_never_raises(
    tmp_path: os.PathLike[str], caplog: pytest.LogCaptureFixture
) -> None:
    notify = Notifier(f"{tmp_path}/gone.sock", 1.0)
    for _ in range(3):
        notify.send("WATCHDOG=1")
    notify.close()
    said = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert len(said) == 1
    assert "systemd notification WATCHDOG=1 not sent" in said[0]
    Notifier(None).ready("nothing to send to")  # no NOTIFY_SOCKET: nothing happens
