"""cpu-usage: how busy the CPUs were since the last sample, kept for a day, signalled each time."""

import time

import psutil
from sqlalchemy import text

KEEP_MS = 86_400_000


def compute(ctx):
    # cpu_percent(None) measures since the previous call in this worker: no blocking wait.
    percent = psutil.cpu_percent(interval=None)
    now = int(time.time() * 1000)
    with ctx.db.begin() as db:
        db.execute(
            text("INSERT INTO samples (ts, percent) VALUES (:ts, :p)"), {"ts": now, "p": percent}
        )
        db.execute(text("DELETE FROM samples WHERE ts < :cutoff"), {"cutoff": now - KEEP_MS})
    return {"percent": percent, "cores": psutil.cpu_count()}
