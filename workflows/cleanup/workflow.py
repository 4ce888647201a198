"""cleanup: finds reclaimable files when a disk fills up, and reports what could be removed.

Launched by the disk-pressure sense (`"workflow": "cleanup|10|<why>"`) or by hand with
`nerve workflow trigger cleanup`. Two roles under a moderator:

- `scanner` walks the temporary-file folders for regular files untouched for MIN_AGE_DAYS and
  lists the largest of them;
- `executor` reports what removing them would free. It deletes nothing unless NERVE_CLEANUP_DELETE=1
  is set in nerve's environment; then it removes the listed files that are still old enough.
"""

import os
import tempfile
import time

from nerve_core.workflow import END, START, WorkflowDefinition

MIN_AGE_DAYS = 7
MAX_FILES_SCANNED = 50_000
MAX_CANDIDATES = 50
DELETE_FILES = os.environ.get("NERVE_CLEANUP_DELETE") == "1"


def moderator(thread):
    return {START: "scanner", "scanner": "executor"}.get(thread[-1].role, END)


def scan_roots():
    roots = {tempfile.gettempdir(), "/var/tmp"}
    return sorted(root for root in roots if os.path.isdir(root))


def old_enough(stat, now):
    return now - stat.st_mtime >= MIN_AGE_DAYS * 86_400


def scanner(ctx):
    now = time.time()
    candidates, scanned, reclaimable = [], 0, 0
    for root in scan_roots():
        for folder, _dirs, names in os.walk(root, onerror=lambda _error: None):
            for name in names:
                scanned += 1
                if scanned > MAX_FILES_SCANNED:
                    break
                path = os.path.join(folder, name)
                try:
                    stat = os.lstat(path)
                except OSError:
                    continue
                if os.path.isfile(path) and not os.path.islink(path) and old_enough(stat, now):
                    candidates.append({"path": path, "bytes": stat.st_size})
                    reclaimable += stat.st_size
    candidates.sort(key=lambda item: item["bytes"], reverse=True)
    return {
        "reason": ctx.prompt,
        "roots": scan_roots(),
        "files_scanned": min(scanned, MAX_FILES_SCANNED),
        "candidates": candidates[:MAX_CANDIDATES],
        "candidate_count": len(candidates),
        "reclaimable_bytes": reclaimable,
    }


def executor(ctx):
    found = ctx.thread[-1].content
    listed = found["candidates"]
    if not DELETE_FILES:
        return {
            "dry_run": True,
            "would_free_bytes": sum(item["bytes"] for item in listed),
            "would_remove": [item["path"] for item in listed],
            "note": "set NERVE_CLEANUP_DELETE=1 to let cleanup remove these files",
        }
    now, removed, freed = time.time(), [], 0
    for item in listed:
        try:
            stat = os.lstat(item["path"])
            if old_enough(stat, now):  # it may have been touched since the scan
                os.remove(item["path"])
                removed.append(item["path"])
                freed += stat.st_size
        except OSError as error:
            ctx.log("warning", "could not remove a file", path=item["path"], error=str(error))
    return {"dry_run": False, "removed": removed, "freed_bytes": freed}


definition = WorkflowDefinition(
    moderator=moderator, roles={"scanner": scanner, "executor": executor}
)
