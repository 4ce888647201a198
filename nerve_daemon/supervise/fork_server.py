"""The fork server: a small process that preloads the worker runtime and forks workers on request.

The kernel starts it first, as a fresh interpreter, before it starts any thread of its own; from
then on every worker is a fork of this already-warm process (about 5 ms, a few MB of its own
memory) instead of a new interpreter (about 200 ms, about 30 MB). User modules are imported in the
worker after the fork, so each worker sees the code as it is on disk now.

Protocol on the control socket (a SOCK_SEQPACKET socketpair with the kernel, so each message
keeps its boundary and its attached descriptors), one JSON object a message:

- kernel → server: `{"spawn": <request id>, "kind": "sense", "args": {...}}` with two file
  descriptors attached (the worker's protocol socket and its output socket), and `"cgroup":
  <path of a cgroup.procs>` when the worker is to join a memory cgroup (the server writes its
  pid there before answering);
- server → kernel: `{"spawned": <request id>, "pid": <pid>}` (with `"cgroupError": "..."` when
  it could not join its cgroup) or `{"spawned": <id>, "error": "..."}`;
  `{"exited": <pid>, "code": <exit code, negative for a signal>}` when a worker ends.

The server reaps every worker it forks (so none is left a zombie), and exits when the kernel's
end of the control socket closes. Workers notice the kernel's death on their own protocol socket.
"""

from __future__ import annotations

import importlib
import os
import selectors
import signal
import socket
import sys
from typing import Any

import orjson

# Worker kinds and the function each runs in the forked child: (module, function).
WORKER_KINDS = {
    "sense": ("nerve_daemon.senses.worker", "main"),
    "workflow": ("nerve_daemon.workflows.worker", "main"),
}
PRELOAD = ("nerve_daemon.senses.worker", "nerve_daemon.workflows.worker")
MAX_REQUEST = 1 << 20


def serve(control: socket.socket) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the kernel's to handle
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd does the work
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, "control")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    _send(control, {"ready": os.getpid()})
    while True:
        for key, _ in selector.select():
            if key.data == "wake":
                _drain(wake_r)
            else:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(control, MAX_REQUEST, 4)
                except InterruptedError:
                    continue
                if not data:
                    return  # the kernel is gone
                _spawn(control, orjson.loads(data), list(fds), [control, wake_r, wake_w])
        _reap(control)


def _spawn(
    control: socket.socket, request: dict[str, Any], fds: list[int], private: list[Any]
) -> None:
    request_id = request.get("spawn")
    kind = WORKER_KINDS.get(request.get("kind", ""))
    if kind is None or len(fds) != 2:
        for fd in fds:
            os.close(fd)
        _send(control, {"spawned": request_id, "error": f"bad spawn request {request!r}"})
        return
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for item in private:
                item.close()
            module_name, function = kind
            target = getattr(importlib.import_module(module_name), function)
            code = int(target(request.get("args", {}), fds[0], fds[1]) or 0)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    reply: dict[str, Any] = {"spawned": request_id, "pid": pid}
    cgroup = request.get("cgroup")
    if isinstance(cgroup, str):  # its group's memory cgroup: joined before it allocates much
        try:
            with open(cgroup, "w") as procs:
                procs.write(str(pid))
        except OSError as exc:
            reply["cgroupError"] = str(exc)
    _send(control, reply)


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(control, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    try:
        control.send(orjson.dumps(message))
    except OSError:
        os._exit(0)  # the kernel is gone


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
