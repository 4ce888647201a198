"""FileWatcher: the workspace's files, watched with watchdog, changes handed over debounced.

watchdog's observer runs on a thread of its own; each relevant path it reports crosses into the
event loop through one memory object stream. The loop side waits for a quiet moment (`debounce`)
and hands the set of changed paths to `on_change`, so an editor that saves by writing a temp file
and renaming it, or by truncating and writing, causes one reload, not several. Only what can
change nerve's behaviour is reported: nerve.yaml and the files under senses/ and workflows/
(compiled caches, editor swap and backup files are not). Only the workspace's own folder (not
recursively) and senses/ and workflows/ (recursively) are watched: data/ changes with every
commit and is never looked at.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from anyio.abc import TaskStatus
from anyio.lowlevel import current_token
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from nerve_core._workspace import CONFIG_FILE

DEBOUNCE_S = 0.3
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".swx", ".tmp", "~")

# watchdog's own harmless race: a folder made while a recursive watch is being added is found
# twice (by the walk and by its IN_CREATE), and it warns. Not a line for nerve.log.
warnings.filterwarnings("ignore", "Callback with id .* already exists", RuntimeWarning)


def relevant(root: Path, path: Path) -> Path | None:
    """`path` relative to `root` if a change to it matters to nerve, else None."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return None
    if relative == Path(CONFIG_FILE):
        return relative
    if (
        not relative.parts
        or relative.parts[0] not in ("senses", "workflows")
        or len(relative.parts) < 3
    ):
        return None
    if "__pycache__" in relative.parts or relative.name.startswith((".", "#")):
        return None
    if relative.name.endswith(_IGNORED_SUFFIXES):
        return None
    return relative


WATCHED_FOLDERS = ("senses", "workflows")


class _Handler(FileSystemEventHandler):
    def __init__(
        self, root: Path, deliver: Callable[[Path], None], on_folder: Callable[[Path], None]
    ) -> None:
        self._root = root
        self._deliver = deliver
        self._on_folder = on_folder
        self.seen = 0  # events watchdog reported: what watching costs

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.seen += 1
        if event.is_directory:
            raw = getattr(event, "dest_path", "") or event.src_path
            folder = Path(raw.decode() if isinstance(raw, bytes) else raw)
            if folder.parent == self._root and folder.name in WATCHED_FOLDERS:
                self._on_folder(folder)  # senses/ or workflows/ appeared: watch inside it
            return
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for raw in paths:
            if raw:
                text = raw.decode() if isinstance(raw, bytes) else raw
                found = relevant(self._root, Path(text))
                if found is not None:
                    self._deliver(found)


class FileWatcher:
    def __init__(
        self,
        root: Path,
        on_change: Callable[[set[Path]], Awaitable[None]],
        debounce: float = DEBOUNCE_S,
    ) -> None:
        self._root = root.resolve()
        self._on_change = on_change
        self._debounce = debounce
        self.handler: _Handler | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        send, receive = anyio.create_memory_object_stream[Path](math.inf)
        token = current_token()

        def deliver(path: Path) -> None:  # on watchdog's thread
            with contextlib.suppress(anyio.RunFinishedError, anyio.ClosedResourceError):
                anyio.from_thread.run_sync(send.send_nowait, path, token=token)

        observer = Observer()
        watched: set[Path] = set()

        def watch(folder: Path) -> None:  # nerve.yaml's folder alone; senses/, workflows/ deep
            if folder not in watched and folder.is_dir():
                watched.add(folder)
                observer.schedule(handler, str(folder), recursive=folder != self._root)

        handler = _Handler(self._root, deliver, watch)
        self.handler = handler
        # Not the whole workspace: data/ changes on every commit, and would wake the watcher
        # for nothing each time.
        watch(self._root)
        for name in WATCHED_FOLDERS:
            watch(self._root / name)
        observer.start()
        try:
            task_status.started()
            with send, receive:
                while True:
                    changed = {await receive.receive()}
                    while True:  # until a quiet moment
                        with anyio.move_on_after(self._debounce) as quiet:
                            changed.add(await receive.receive())
                        if quiet.cancelled_caught:
                            break
                    await self._on_change(changed)
        finally:
            observer.stop()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(observer.join)
