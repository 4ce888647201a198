"""disk-pressure: launches the cleanup workflow when a partition becomes nearly full.

It launches once when a partition crosses THRESHOLD_PERCENT, and signals once when it falls back
below. Lower the threshold to see it fire: edit THRESHOLD_PERCENT here, or set the environment
variable NERVE_DISK_PRESSURE_PERCENT before starting nerve (e.g. to 1).
"""

import os
import time

import psutil
from sqlalchemy import text

THRESHOLD_PERCENT = float(os.environ.get("NERVE_DISK_PRESSURE_PERCENT", "90"))
SKIP_FILESYSTEMS = {"squashfs", "iso9660", "overlay", "tmpfs", "devtmpfs"}


def compute(ctx):
    now = int(time.time() * 1000)
    crossed, recovered = [], []
    with ctx.db.begin() as db:
        was = dict(db.execute(text("SELECT mountpoint, pressured FROM partitions")).all())
        for part in psutil.disk_partitions(all=False):
            if part.fstype in SKIP_FILESYSTEMS:
                continue
            try:
                percent = psutil.disk_usage(part.mountpoint).percent
            except OSError:
                continue  # unmounted meanwhile, or not ours to read
            pressured = percent >= THRESHOLD_PERCENT
            if pressured and not was.get(part.mountpoint):
                crossed.append((part.mountpoint, percent))
            elif not pressured and was.get(part.mountpoint):
                recovered.append((part.mountpoint, percent))
            db.execute(
                text(
                    "INSERT INTO partitions (mountpoint, percent, pressured, updated_at) "
                    "VALUES (:m, :p, :x, :t) ON CONFLICT (mountpoint) DO UPDATE SET "
                    "percent = :p, pressured = :x, updated_at = :t"
                ),
                {"m": part.mountpoint, "p": percent, "x": int(pressured), "t": now},
            )
    if crossed:
        path, percent = max(crossed, key=lambda item: item[1])
        prompt = f"Partition {path} is {percent:.0f}% full (threshold {THRESHOLD_PERCENT:g}%)"
        return {"path": path, "percent": percent, "workflow": f"cleanup|10|{prompt}"}
    if recovered:
        return {"recovered": [{"path": path, "percent": percent} for path, percent in recovered]}
    return None
