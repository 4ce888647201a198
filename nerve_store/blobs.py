"""Content-addressed blobs: `data/blobs/<first 2 hex>/<remaining 62 hex>`, named by sha256.

A write goes to a temp file in the blob's folder, is fsynced, renamed into place, and the folder
is fsynced (the rename, and a new fan-out folder's own name, are durable only then: a row that
names the blob is written after, so a power loss never leaves a row whose blob is gone). A reader
never sees a partial blob and concurrent writers of the same content are harmless (the last
rename wins with identical bytes). A read verifies the digest: a blob changed on disk raises
`BlobIntegrityError` instead of returning wrong bytes. Digests are validated before any path is
built, so no input can name a file outside the store.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from nerve_core.errors import BlobIntegrityError, StoreError

from ._files import fsync_dir, make_dirs, os_error_text

_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, data: bytes) -> str:
        """Store `data`; return its lowercase sha256 hex digest."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(f"a blob is bytes, got {type(data).__name__}")
        digest = hashlib.sha256(data).hexdigest()
        target = self._path_of(digest)
        if target.is_file():
            return digest
        temp = None
        try:
            make_dirs(target.parent)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
            temp = str(target)  # in place, but durable only once its folder is synced:
            fsync_dir(target.parent)  # failing that, removed, so a retry does it all again
        except BaseException as exc:
            if temp is not None:
                Path(temp).unlink(missing_ok=True)
            if isinstance(exc, OSError):  # a full disk, say: name it, and where
                message = f"blob {digest} could not be written in {target.parent}"
                raise StoreError(f"{message}: {os_error_text(exc)}") from exc
            raise
        return digest

    def read(self, digest: str) -> bytes:
        """The bytes stored under `digest`; raise if missing or if they no longer match it."""
        path = self._path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"no blob {digest}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise BlobIntegrityError(
                f"blob {digest} is corrupt: its content hashes to {actual} ({path})"
            )
        return data

    def exists(self, digest: str) -> bool:
        return self._path_of(digest).is_file()

    def _path_of(self, digest: str) -> Path:
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise StoreError(f"invalid blob digest {digest!r}: expected 64 lowercase hex digits")
        return self.path / digest[:2] / digest[2:]
