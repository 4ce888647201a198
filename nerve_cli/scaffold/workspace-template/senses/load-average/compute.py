"""load-average: samples the system load, keeps a day of history, and signals every sample.

The signal's payload says whether the load is high for this machine's core count, so another
sense can react to it with `on: [load-average]`.
"""

import os
import time

from sqlalchemy import text

HIGH_LOAD_PER_CORE = 1.0
KEEP_SECONDS = 86_400


def compute(ctx):
    load1, load5, load15 = os.getloadavg()
    now = int(time.time())
    with ctx.db.begin() as db:
        db.execute(
            text("INSERT INTO samples (ts, load1, load5, load15) VALUES (:ts, :l1, :l5, :l15)"),
            {"ts": now, "l1": load1, "l5": load5, "l15": load15},
        )
        db.execute(text("DELETE FROM samples WHERE ts < :cutoff"), {"cutoff": now - KEEP_SECONDS})
    per_core = load1 / (os.cpu_count() or 1)
    return {
        "load1": round(load1, 2),
        "per_core": round(per_core, 2),
        "high": per_core >= HIGH_LOAD_PER_CORE,
    }
