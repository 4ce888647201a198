"""Durable file steps shared by the stores: a rename or a new file is durable only once its
folder is fsynced too (a power loss can otherwise take back the name while the bytes survive)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
