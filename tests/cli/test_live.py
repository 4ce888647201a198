"""The live view of `nerve dev` and the daemon's text log never make the kernel's loop wait on
a terminal or a disk: both write from threads of their own."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from nerve_cli import live
from nerve_core import LogType, Workspace
from nerve_daemon.service import daemon_log
from nerve_store import LogRow


def test_a_paused_terminal_never_blocks_the_rows_handed_to_the_live_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused = threading.Event()
    printed: list[str] = []

    class PausedConsole:
        def print(self, text: str, **_: object) -> None:
            paused.wait(30)  # the terminal is paused (Ctrl+S) until the event is set
            printed.append(text)

    monkeypatch.setattr(live, "console", PausedConsole)
    view = live.LiveView(Workspace(tmp_path))
    began = time.monotonic()
    for n in range(15_000):
        view.row(LogRow("tick", LogType.SIGNAL, {"n": n}, ts=0))
    handed = time.monotonic() - began
    assert not printed
    assert handed < 20  # never waited on the paused terminal (it would for 30 s a row)
    paused.set()
    view.close()
    assert any("lines not shown" in line for line in printed)
    shown = [line for line in printed if "signal" in line]
    assert 10_000 <= len(shown) < 15_000  # the queue's worth, the rest counted as dropped
    assert '{"n":0}' in shown[0]


def test_every_row_type_and_any_text_in_a_row_prints_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row type without a colour of its own (`store.archive`, say) once printed "[]...[/]",
    which rich refused: the live view's thread died with a MarkupError and printed no more."""
    view = live.LiveView(Workspace(tmp_path))
    for kind in LogType:
        if kind not in (LogType.KERNEL_START, LogType.KERNEL_STOP):
            view.row(LogRow("[bold]src[/]", kind, {"text": "[/] [red]not markup[/red]"}, ts=0))
    view.close()
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == len(LogType) - 2
    assert all("[bold]src[/]" in line for line in shown)
    described = {"compute.error", "worker.start", "worker.exit", "workflow.status"}
    described.add("workflow.message")  # these say what their payload means, not the payload
    plain = [line for line in shown if line.split()[1] not in described]
    assert len(plain) == len(shown) - len(described)
    assert all('"[/] [red]not markup[/red]"' in line for line in plain)


def test_a_stalled_log_file_never_blocks_a_log_call_and_what_was_logged_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = Workspace(tmp_path)
    stalled = threading.Event()
    with daemon_log(workspace) as file_handler:
        emit = file_handler.emit

        def slow_emit(record: logging.LogRecord) -> None:
            stalled.wait(30)  # the disk does not answer until the event is set
            emit(record)

        monkeypatch.setattr(file_handler, "emit", slow_emit)
        logged = threading.Thread(
            target=lambda: [logging.getLogger("nerve").info("line %d", n) for n in range(100)]
        )
        logged.start()
        logged.join(10)
        assert not logged.is_alive()  # the log calls returned while the disk was stalled
        stalled.set()
    text = workspace.log_file.read_text()
    assert "line 0" in text
    assert "line 99" in text
