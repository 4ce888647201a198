"""Durable file steps shared by the stores: a rename or a new file is durable only once its
folder is fsynced too (a power loss can otherwise take back the name while the bytes survive)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path, mode: int = 0o777) -> bool:
    """`path` and its missing parents, each made durable: a folder's own name is on the disk only
    once the folder holding it is fsynced (SQLite syncs the folder of a database it creates, not
    that folder's parent). True if anything was made."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:  # made meanwhile by another process: it syncs its own
            continue
        fsync_dir(folder.parent)
    return bool(missing)


def os_error_text(exc: OSError) -> str:
    """An OS error as a person reads it, with the code to search for: `No space left on device
    (ENOSPC)`."""
    return f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, 'error')})"
