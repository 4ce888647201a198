"""A FUSE passthrough that can lose power: what was not fsynced is gone after the cut.

It serves a backing folder (`live`) at a mount point and keeps, beside it, what a disk would
still hold after a power cut (`durable`): each file's bytes as of its last fsync, and each
folder's names as of its last fsync. The model is POSIX's, strictly (ext4, xfs and btrfs keep
more: fsyncing a new file there also keeps its name, and its new folders' names):

- a write is durable once its file is fsynced (bytes and size as they are then);
- a create, mkdir, rename or unlink is durable once its folder is fsynced;
- before that, any 512-byte sector of a write may reach the disk anyway, in any order, and
  stay (a disk writes its cache back when it likes): each does with the chance `early`. So a
  cut can leave a WAL frame torn, or a page of the database newer than its last sync.

A rename not followed by its folder's fsync is lost; a file whose name is durable but whose
bytes were never synced comes back empty (as delayed allocation leaves it).

`LossyMount` (the test side) mounts it in a process of its own, cuts the power (the writers must
be dead first: killed, as a power cut kills them), and rebuilds `live` as the disk would be
found. Run as a script: `lossy_fs.py LIVE MOUNTPOINT STATE EARLY SEED` serves until unmounted,
then writes the durable names to STATE (JSON) for the rebuild; the synced bytes are in STATE's
folder.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PAGE = 4096
SECTOR = 512


class LossyFs:  # the operations fusepy calls, by name; each path is relative to the mount
    def __init__(self, live: Path, shadow: Path, early: float = 0.0, seed: int = 0) -> None:
        self.live = live
        self.early = early
        self.chance = random.Random(seed)
        self.shadow = shadow  # <file id>: the bytes of each file as of its last fsync
        self.guard = threading.Lock()
        self.next_id = 0
        self.ids: dict[int, int] = {}  # a live inode → our file id (inodes are reused)
        self.dirty: dict[int, set[int]] = {}  # file id → pages written since its last fsync
        self.durable: dict[
            str, dict[str, int | None]
        ] = {}  # folder → name → file id (None: folder)
        for folder, dirs, files in os.walk(live):  # what is there at mount is on the disk
            rel = os.path.relpath(folder, live)
            names: dict[str, int | None] = dict.fromkeys(dirs)
            for name in files:
                names[name] = file_id = self._new_id(os.lstat(os.path.join(folder, name)).st_ino)
                shutil.copyfile(os.path.join(folder, name), shadow / str(file_id))
            self.durable[rel] = names

    def _new_id(self, inode: int) -> int:
        self.next_id += 1
        self.ids[inode] = self.next_id
        return self.next_id

    def _path(self, path: str) -> str:
        return os.path.join(self.live, path.lstrip("/"))

    def _id_of(self, fh: int) -> int:
        inode = os.fstat(fh).st_ino
        return self.ids.get(inode) or self._new_id(inode)

    # -- what a power cut would keep ------------------------------------------------------------

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self.guard:
            file_id = self._id_of(fh)
            pages = self.dirty.pop(file_id, set())
            target = self.shadow / str(file_id)
            with open(target, "r+b" if target.exists() else "wb") as out:
                for page in sorted(pages):
                    out.seek(page * PAGE)
                    out.write(os.pread(fh, PAGE, page * PAGE))
                out.truncate(os.fstat(fh).st_size)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        rel = path.lstrip("/") or "."
        with self.guard:
            names: dict[str, int | None] = {}
            for entry in os.scandir(self._path(path)):
                stat = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    names[entry.name] = None
                else:
                    names[entry.name] = self.ids.get(stat.st_ino) or self._new_id(stat.st_ino)
            self.durable[rel] = names
        return 0

    # -- a passthrough otherwise ----------------------------------------------------------------

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        written = os.pwrite(fh, data, offset)
        with self.guard:
            file_id = self._id_of(fh)
            pages = self.dirty.setdefault(file_id, set())
            pages.update(range(offset // PAGE, (offset + max(written, 1) - 1) // PAGE + 1))
            if self.early:
                self._write_back_some(file_id, data[:written], offset)
        return written

    def _write_back_some(self, file_id: int, data: bytes, offset: int) -> None:
        """Put some sectors of this write on the disk now, unasked."""
        target = self.shadow / str(file_id)
        with open(target, "r+b" if target.exists() else "wb") as out:
            for start in range(0, len(data), SECTOR):
                if self.chance.random() < self.early:
                    out.seek(offset + start)
                    out.write(data[start : start + SECTOR])

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        os.truncate(self._path(path), length)
        return 0

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        fh = os.open(self._path(path), os.O_RDWR | os.O_CREAT, mode)
        with self.guard:
            self._new_id(os.fstat(fh).st_ino)
        return fh

    def open(self, path: str, flags: int) -> int:
        return os.open(self._path(path), flags & ~(os.O_CREAT | os.O_EXCL))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def flush(self, path: str, fh: int) -> int:
        return 0  # a close is no sync

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def unlink(self, path: str) -> int:
        live = self._path(path)
        inode = os.lstat(live).st_ino
        os.unlink(live)
        with self.guard:  # its inode may be reused by a new file: that one gets a new id
            if not os.path.exists(live):
                self.ids.pop(inode, None)
        return 0

    def rename(self, old: str, new: str) -> int:
        try:
            replaced: int | None = os.lstat(self._path(new)).st_ino
        except FileNotFoundError:
            replaced = None
        os.rename(self._path(old), self._path(new))
        if replaced is not None:
            with self.guard:  # its inode is free for a new file, which gets a new id
                self.ids.pop(replaced, None)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._path(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._path(path))
        return 0

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int | float]:
        try:
            stat = os.lstat(self._path(path))
        except OSError as exc:
            from fuse import FuseOSError

            raise FuseOSError(exc.errno or errno.EIO) from None
        keys = ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid")
        times = ("st_atime", "st_mtime", "st_ctime")
        return {key: getattr(stat, key) for key in keys + times}

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._path(path), amode):
            from fuse import FuseOSError

            raise FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._path(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.chown(self._path(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> int:
        os.utime(self._path(path), times)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        stat = os.statvfs(self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files")
        return {key: getattr(stat, key) for key in (*keys, "f_flag", "f_frsize", "f_namemax")}


def serve(live: Path, mountpoint: Path, state: Path, early: float, seed: int) -> None:
    from fuse import FUSE, FuseOSError, Operations

    class Served(LossyFs, Operations):  # fusepy answers an OSError raised in an operation
        def __call__(self, op: str, *args: Any) -> Any:
            try:
                return getattr(self, op)(*args)
            except AttributeError:
                raise FuseOSError(errno.ENOSYS) from None
            except OSError as exc:
                raise FuseOSError(exc.errno or errno.EIO) from None

    shadow = state.parent / "shadow"
    shutil.rmtree(shadow, ignore_errors=True)
    shadow.mkdir(parents=True)
    operations = Served(live, shadow, early, seed)
    FUSE(operations, str(mountpoint), foreground=True, big_writes=True, use_ino=False)
    state.write_text(json.dumps(operations.durable))  # unmounted: what the disk holds


class LossyMount:
    """`live` served at `mountpoint` by a FUSE process, until `power_cut()`."""

    def __init__(self, live: Path, mountpoint: Path, state: Path, early: float = 0.0) -> None:
        self.live, self.mountpoint, self.state = live, mountpoint, state
        self.early = early  # the chance that a sector not yet synced reaches the disk anyway
        self.mounts = 0
        self.process: subprocess.Popen[bytes] | None = None

    def mount(self) -> None:
        self.state.unlink(missing_ok=True)
        assert not os.path.ismount(self.mountpoint), f"{self.mountpoint} is mounted already"
        self.mounts += 1
        paths = [str(self.live), str(self.mountpoint), str(self.state)]
        command = [sys.executable, __file__, *paths, str(self.early), str(self.mounts)]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mountpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise AssertionError(f"the lossy filesystem did not mount: {error}")
            time.sleep(0.02)

    def power_cut(self) -> None:
        """Unmount (every writer must be dead) and leave `live` as the disk would be found."""
        assert self.process is not None
        subprocess.run(["umount", str(self.mountpoint)], check=True, capture_output=True)
        self._ended(timeout=30)
        durable: dict[str, dict[str, int | None]] = json.loads(self.state.read_text())
        shadow = self.state.parent / "shadow"
        shutil.rmtree(self.live)
        self.live.mkdir()
        for folder in sorted(durable, key=lambda rel: -1 if rel == "." else rel.count("/")):
            if not (self.live / folder).is_dir():
                continue  # its own name never became durable: gone with all it held
            for name, file_id in durable[folder].items():
                path = self.live / folder / name
                if file_id is None:
                    path.mkdir()
                elif (shadow / str(file_id)).exists():
                    shutil.copyfile(shadow / str(file_id), path)
                else:
                    path.touch()  # named durably, never synced: empty

    def close(self) -> None:
        """Unmount whatever is mounted, even after a failure (lazily if it is busy)."""
        if self.process is not None:
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)
            try:
                self._ended(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self._ended(timeout=10)

    def _ended(self, timeout: float) -> None:
        assert self.process is not None
        self.process.wait(timeout=timeout)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


if __name__ == "__main__":
    live, mountpoint, state, early, seed = sys.argv[1:]
    serve(Path(live), Path(mountpoint), Path(state), float(early), int(seed))
