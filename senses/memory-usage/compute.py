"""memory-usage: share of memory in use and what is still available, kept for a day."""

import time

import psutil
from sqlalchemy import text

KEEP_MS = 86_400_000


def compute(ctx):
    memory = psutil.virtual_memory()
    available_mb = memory.available // (1 << 20)
    now = int(time.time() * 1000)
    with ctx.db.begin() as db:
        db.execute(
            text("INSERT INTO samples (ts, percent, available_mb) VALUES (:ts, :p, :a)"),
            {"ts": now, "p": memory.percent, "a": available_mb},
        )
        db.execute(text("DELETE FROM samples WHERE ts < :cutoff"), {"cutoff": now - KEEP_MS})
    return {"percent": memory.percent, "available_mb": available_mb}
