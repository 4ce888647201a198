from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nerve_core.errors import BlobIntegrityError, StoreError
from nerve_store import BlobStore


def test_a_blob_is_stored_under_its_sha256_and_read_back(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest = blobs.write(b"hello nerve")
    assert digest == hashlib.sha256(b"hello nerve").hexdigest()
    assert (tmp_path / "blobs" / digest[:2] / digest[2:]).read_bytes() == b"hello nerve"
    assert blobs.exists(digest)
    assert blobs.read(digest) == b"hello nerve"


def test_a_blob_is_fsynced_before_it_is_renamed_into_place_and_its_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader must never find a blob whose bytes a power loss could still take back, nor a
    row name a blob whose name a power loss could take back (the rename is durable only once
    its folder is synced; a new fan-out folder, once the store's folder is)."""
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        steps.append(f"fsync {Path(os.readlink(f'/proc/self/fd/{fd}')).relative_to(tmp_path)}")
        real_fsync(fd)

    def replace(source: str, target: str) -> None:
        steps.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    blobs = BlobStore(tmp_path / "blobs")
    (tmp_path / "blobs").mkdir()
    digest = blobs.write(b"durable")
    folder = f"blobs/{digest[:2]}"
    temp = steps[1].split("/")[-1]
    assert steps == ["fsync blobs", f"fsync {folder}/{temp}", "rename", f"fsync {folder}"]
    assert temp.startswith(".tmp-")
    steps.clear()
    same_folder = (b"%d" % n for n in range(10_000))  # a second blob in the same fan-out folder
    other = next(data for data in same_folder if hashlib.sha256(data).hexdigest()[:2] == digest[:2])
    blobs.write(other)
    assert [step.split(" ")[0] for step in steps] == ["fsync", "rename", "fsync"]
    assert steps[-1] == f"fsync {folder}"


def test_writing_the_same_content_twice_keeps_one_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    assert blobs.write(b"x" * 1000) == blobs.write(b"x" * 1000)
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_a_tampered_blob_is_detected_on_read(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = blobs.write(b"original")
    (tmp_path / digest[:2] / digest[2:]).write_bytes(b"tampered")
    with pytest.raises(BlobIntegrityError, match="corrupt"):
        blobs.read(digest)


def test_a_missing_blob_is_a_store_error(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    missing = hashlib.sha256(b"never written").hexdigest()
    assert not blobs.exists(missing)
    with pytest.raises(StoreError, match="no blob"):
        blobs.read(missing)


@pytest.mark.parametrize(
    "digest",
    ["../../etc/passwd", "ab/../../x", "A" * 64, "0" * 63, "0" * 65, "", "/" + "0" * 63, "g" * 64],
)
def test_a_digest_that_is_not_64_lowercase_hex_never_becomes_a_path(
    tmp_path: Path, digest: str
) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(StoreError, match="invalid blob digest"):
        blobs.read(digest)
    with pytest.raises(StoreError, match="invalid blob digest"):
        blobs.exists(digest)


def test_non_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="bytes"):
        BlobStore(tmp_path).write("text")  # type: ignore[arg-type]


def test_concurrent_writers_of_the_same_content_in_threads_and_processes(tmp_path: Path) -> None:
    data = b"shared content " * 10_000
    script = (
        "import sys; from pathlib import Path; from nerve_store import BlobStore; "
        "[BlobStore(Path(sys.argv[1])).write(b'shared content ' * 10_000) for _ in range(20)]"
    )
    children = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)]) for _ in range(3)]
    blobs = BlobStore(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        digests = set(pool.map(lambda _: blobs.write(data), range(40)))
    assert all(child.wait(timeout=60) == 0 for child in children)
    assert digests == {hashlib.sha256(data).hexdigest()}
    assert blobs.read(digests.pop()) == data
    assert [p.name for p in tmp_path.rglob(".tmp-*")] == []


def test_a_full_blob_store_is_a_clear_error_naming_enospc_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    """The store on a 64 KB tmpfs of its own (mounting needs root: without it this fails)."""
    folder = tmp_path / "blobs"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]
    mounted = subprocess.run(mount, capture_output=True, text=True, check=False)
    assert mounted.returncode == 0, f"cannot mount a tmpfs (needs root): {mounted.stderr}"
    try:
        blobs = BlobStore(folder)
        small = blobs.write(b"fits")
        with pytest.raises(StoreError, match=r"could not be written in .*\(ENOSPC\)"):
            blobs.write(b"x" * 1024 * 1024)
        left = [path.name for path in folder.rglob("*") if path.is_file()]
        assert left == [small[2:]]  # the blob that fitted, and no temp file
        assert blobs.read(small) == b"fits"
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
