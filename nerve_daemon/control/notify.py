"""systemd's service notifications (sd_notify(3)), for nerve run as a `Type=notify` service:
`READY=1` once the kernel serves (its socket answers, every worker started), `WATCHDOG=1` from
the kernel's own loop every second or every half `WatchdogSec=` if shorter (a loop that hangs
stops them, and systemd restarts the service), `RELOADING=1` and `READY=1` around a reload on
SIGHUP, `STOPPING=1` when a graceful stop begins, and a `STATUS=` line saying what it does or
what is wrong (a stalled logs.db, a crash-looped worker), sent as it changes, which `systemctl
status` shows.

Nothing is sent without `NOTIFY_SOCKET` in the environment. The variables are taken out of it
as they are read, so the workers and what they start do not inherit them. The protocol is a
datagram of `KEY=value` lines to a Unix socket (`@` naming an abstract one); it is written here
rather than taken from a library because that is all of it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

import anyio

log = logging.getLogger("nerve")

STATUS_EVERY_S = 1.0


class Notifier:
    """Where to send notifications (None: nowhere), and how often the watchdog wants a ping."""

    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s
        self._socket: socket.socket | None = None
        self._failed = False  # said once in the log, not at every ping
        self._status: str | None = None  # the last STATUS= sent

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] = os.environ) -> Notifier:
        address = environ.pop("NOTIFY_SOCKET", None) or None
        usec = environ.pop("WATCHDOG_USEC", "")
        pid = environ.pop("WATCHDOG_PID", "")
        ours = pid in ("", str(os.getpid()))  # meant for this process, not a parent
        watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and ours else None
        if address is not None and address.startswith("@"):
            address = "\0" + address[1:]  # Linux's abstract namespace
        return cls(address, watchdog_s if address else None)

    def send(self, *fields: str) -> None:
        """One notification of `KEY=value` fields; a failure is logged once and ignored (the
        service manager may be gone: nerve runs on)."""
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)  # never wait on the service manager
            self._socket.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd notification %s not sent: %s", fields[0], exc)
            self._failed = True

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        """A reload begins (`READY=1` again when it ends): what `Type=notify-reload` waits for."""
        self._status = "reloading"
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> None:
        self._status = "stopping"
        self.send("STOPPING=1", "STATUS=stopping")

    async def watch(self, status: Callable[[], str]) -> None:
        """Until cancelled, from the caller's event loop: ping the watchdog every half its
        interval, and send `status()` whenever it changes (looked at every second)."""
        if self.address is None:
            return
        every = (
            STATUS_EVERY_S if self.watchdog_s is None else min(STATUS_EVERY_S, self.watchdog_s / 2)
        )
        while True:
            if self.watchdog_s is not None:
                self.send("WATCHDOG=1")
            now = status()
            if now != self._status and self._status != "stopping":
                self._status = now
                self.send(f"STATUS={now}")
            await anyio.sleep(every)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
