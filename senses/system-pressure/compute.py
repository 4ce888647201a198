"""system-pressure: a derived sense. On each cpu-usage or memory-usage signal it reads the latest
sample of both (their databases, read-only), grades the pressure, and signals only when the grade
changes: `ok`, `elevated` (either above 75 %) or `high` (either above 90 %). When it becomes
`high`, it launches the triage workflow instead, to find out why."""

import time

from sqlalchemy import text

ELEVATED_PERCENT = 75.0
HIGH_PERCENT = 90.0


def latest_percent(ctx, sense):
    with ctx.peer(sense).connect() as db:
        return db.execute(text("SELECT percent FROM samples ORDER BY ts DESC LIMIT 1")).scalar()


def compute(ctx):
    cpu = latest_percent(ctx, "cpu-usage")
    memory = latest_percent(ctx, "memory-usage")
    worst = max(value for value in (cpu, memory, 0.0) if value is not None)
    level = "high" if worst >= HIGH_PERCENT else "elevated" if worst >= ELEVATED_PERCENT else "ok"
    with ctx.db.begin() as db:
        previous = db.execute(text("SELECT level FROM levels ORDER BY ts DESC LIMIT 1")).scalar()
        if previous == level:
            return None
        db.execute(
            text(
                "INSERT INTO levels (ts, level, cpu_percent, memory_percent) "
                "VALUES (:t, :l, :c, :m)"
            ),
            {"t": int(time.time() * 1000), "l": level, "c": cpu, "m": memory},
        )
    change = {"level": level, "was": previous, "cpu_percent": cpu, "memory_percent": memory}
    if level == "high":
        change["workflow"] = f"triage|12|Pressure is high: CPU {cpu} %, memory {memory} %"
    return change
