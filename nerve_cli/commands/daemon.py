"""`nerve daemon start|stop|restart|status|logs|run`, the aliases `nerve start|stop|restart|status`
and `nerve logs`: the background daemon (and `run`, the same daemon in the foreground)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..options import JsonOption, RootOption, workspace_root

if TYPE_CHECKING:
    from nerve_core import HealthResponse, Workspace

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL = 20

app = typer.Typer(help="The background daemon.", no_args_is_help=True)

FollowOption = Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")]
LinesOption = Annotated[int, typer.Option("-n", "--lines", min=0, help="Lines to show.")]


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="daemon")
    for name, command in (
        ("start", start),
        ("stop", stop),
        ("restart", restart),
        ("status", status),
    ):
        app.command(name)(command)
        parent.command(name, help=f"Alias of `nerve daemon {name}`.")(command)
    app.command("logs")(logs)
    parent.command("logs")(logs)
    app.command("run")(run)


def start(root: RootOption = None) -> None:
    """Start the daemon in the background; return once it answers, printing its pid."""
    from ..output import say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    pid = start_daemon(workspace)
    say(f"nerve started in {workspace.root} (pid {pid})")


def run(root: RootOption = None) -> None:
    """Run the daemon in the foreground, as `nerve start` runs it in the background (its log in
    logs/nerve.log, nothing on the terminal): for a service manager. Under systemd it is a
    `Type=notify` service: ready once it serves, and it pings `WatchdogSec=`. SIGHUP reloads
    (`nerve reload`), SIGTERM stops it gracefully."""
    from nerve_daemon.daemon_main import main

    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    raise typer.Exit(main(workspace.root))


def stop(root: RootOption = None) -> None:
    """Stop the daemon: SIGTERM (graceful), SIGKILL if it is still running after 20 s."""
    from ..output import say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    pid = stop_daemon(workspace)
    say(f"nerve stopped (pid {pid})" if pid else f"nerve is not running in {workspace.root}")


def restart(root: RootOption = None) -> None:
    """Stop the daemon if it runs, then start it."""
    from ..output import say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    stop_daemon(workspace)
    pid = start_daemon(workspace)
    say(f"nerve restarted in {workspace.root} (pid {pid})")


def status(root: RootOption = None, as_json: JsonOption = False) -> None:
    """The daemon's pid, uptime and workers; exit 3 when it is not running."""
    from nerve_core import HealthRequest, HealthResponse

    from ..client import request
    from ..output import counted, print_json, print_table, say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    health = request(workspace, HealthRequest(), HealthResponse, timeout=10)
    if as_json:
        print_json(health.model_dump(mode="json", by_alias=True))
        return
    say(
        f"nerve {health.version} running in {workspace.root}: pid {health.pid}, "
        f"up {health.uptime_s:.0f}s, {counted(health.senses, 'sense')}"
    )
    if health.sense_names:
        say(f"senses: {', '.join(health.sense_names)}")
    print_table(
        None,
        ["worker", "kind", "state", "pid", "restarts"],
        [(w.name, w.kind, w.state, w.pid or "-", w.restarts) for w in health.workers],
    )
    limited = [
        f"{w.name} ({w.memory_limit}{f': {w.memory_limit_why}' if w.memory_limit_why else ''})"
        for w in health.workers
        if w.memory_limit
    ]
    if limited:
        say(f"memory limits enforced by: {', '.join(limited)}")
    fatal = [w.name for w in health.workers if w.state == "FATAL"]
    if fatal:
        say(f"crash-looped, not respawning: {', '.join(fatal)} (see logs/nerve.log)")
    if health.stalled_runs:
        from nerve_core import format_duration

        silent = health.stalled_runs.items()
        stalled = [f"{run} (silent {format_duration(round(s))})" for run, s in silent]
        say(f"stalled runs: {', '.join(stalled)} (see `nerve explain run <id>`)")
    if health.rate_limits:
        limits = [
            f"{name} {each['rate']} ({each['inWindow']} in window, {each['waiting']} waiting, "
            f"next free in {each['nextFreeInS']:g}s)"
            for name, each in health.rate_limits.items()
        ]
        say(f"rate limits: {'; '.join(limits)}")
    if health.store_error or health.store_damage:
        from ..output import warn

        for problem in (health.store_error, health.store_damage):
            if problem:
                warn(problem)


def logs(
    root: RootOption = None, follow: FollowOption = False, lines: LinesOption = LOG_TAIL
) -> None:
    """The daemon's text log: its last lines, and with -f what follows."""
    import sys
    import time

    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    path = workspace.log_file
    if not path.exists():
        sys.stderr.write(f"no log yet: {path}\n")
        return
    sys.stdout.write("".join(_tail(path, lines)))
    sys.stdout.flush()
    if follow:
        position, inode = path.stat().st_size, path.stat().st_ino
        while True:
            time.sleep(0.2)
            try:
                current = path.stat()
            except FileNotFoundError:
                continue
            if current.st_ino != inode or current.st_size < position:  # rotated
                position, inode = 0, current.st_ino
            if current.st_size > position:
                with path.open("rb") as handle:
                    handle.seek(position)
                    sys.stdout.write(handle.read().decode("utf-8", "replace"))
                    sys.stdout.flush()
                    position = handle.tell()
    sys.stderr.write(f"({path})\n")


# -- the mechanics ---------------------------------------------------------------------------------


def start_daemon(workspace: Workspace) -> int:
    """Spawn the daemon detached and wait for its `health`; return its pid."""
    import subprocess
    import sys
    import time

    from nerve_core import load_nerve_config
    from nerve_core.errors import DaemonNotRunning, NerveError

    load_nerve_config(workspace.config_path)  # a bad config fails here, listed, not in the log
    try:
        running = _health(workspace)
    except DaemonNotRunning:
        running = None
    if running is not None:
        raise NerveError(f"nerve is already running in {workspace.root} (pid {running.pid})")
    workspace.log_file.parent.mkdir(parents=True, exist_ok=True)
    with workspace.log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "nerve_daemon.daemon_main", str(workspace.root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workspace.root,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NerveError(
                _failed_to_start(workspace, f"it exited with code {process.returncode}")
            )
        try:
            health = _health(workspace)
        except DaemonNotRunning:
            time.sleep(0.05)
            continue
        if health.pid == process.pid:
            return process.pid
        raise NerveError(f"another nerve (pid {health.pid}) answered in {workspace.root}")
    process.kill()
    raise NerveError(_failed_to_start(workspace, f"it did not answer within {START_TIMEOUT_S:g}s"))


def stop_daemon(workspace: Workspace) -> int | None:
    """SIGTERM the daemon, SIGKILL it after the timeout; return its pid, None if not running."""
    import os
    import signal
    import time

    from nerve_core.errors import DaemonNotRunning

    found: int | None
    try:
        found = _health(workspace).pid
    except DaemonNotRunning:
        found = _pid_from_file(workspace)
    if found is None:
        return None
    pid = found
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _clean_up(workspace)
        return None
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    _clean_up(workspace)
    return pid


def _health(workspace: Workspace) -> HealthResponse:
    from nerve_core import HealthRequest, HealthResponse

    from ..client import request

    return request(workspace, HealthRequest(), HealthResponse, timeout=5)


def _pid_from_file(workspace: Workspace) -> int | None:
    """The pid in nerve.pid if that process still runs this workspace's nerve daemon (not a
    reused pid, and not another workspace's daemon that got the pid since)."""
    from pathlib import Path

    import psutil

    try:
        pid = int(workspace.pid_path.read_text().strip())
        command = psutil.Process(pid).cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    if "nerve_daemon.daemon_main" not in command or not command:
        return None
    try:
        same = Path(command[-1]).resolve() == workspace.root.resolve()
    except OSError:
        return None
    return pid if same else None


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _clean_up(workspace: Workspace) -> None:
    workspace.pid_path.unlink(missing_ok=True)
    workspace.socket_path.unlink(missing_ok=True)


def _failed_to_start(workspace: Workspace, why: str) -> str:
    """Why the daemon did not start: the refusal it logged (a damaged logs.db, say) in its one
    line; else the log lines of this attempt."""
    lines = _tail(workspace.log_file, LOG_TAIL)
    starts = [n for n, line in enumerate(lines) if " daemon starting: " in line]
    lines = lines[starts[-1] :] if starts else lines
    refusals = [line.split(" ERROR nerve daemon: ", 1)[1] for line in lines if _REFUSED in line]
    if refusals:
        return f"nerve did not start: {refusals[-1].strip()}"
    tail = "".join(lines).rstrip()
    return (
        f"nerve did not start: {why}. The end of {workspace.relative(workspace.log_file)}:\n{tail}"
    )


_REFUSED = " ERROR nerve daemon: "  # how the daemon logs a refusal to start (daemon_main.py)


def _tail(path: object, count: int) -> list[str]:
    from collections import deque
    from pathlib import Path

    if count == 0 or not Path(str(path)).exists():
        return []
    with Path(str(path)).open(encoding="utf-8", errors="replace") as lines:
        return list(deque(lines, maxlen=count))
