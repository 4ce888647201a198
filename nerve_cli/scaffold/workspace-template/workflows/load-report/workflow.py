"""load-report: reads the recent load samples and writes a short report.

Two roles under a moderator: `reader` collects the samples from the load-average sense's
database (read-only), `reporter` turns them into a summary. Start a run with
`nerve workflow trigger load-report --prompt "why is it slow?"`.
"""

from sqlalchemy import text

from nerve_core.workflow import END, START, WorkflowDefinition


def moderator(thread):
    return {START: "reader", "reader": "reporter"}.get(thread[-1].role, END)


def reader(ctx):
    with ctx.peer("load-average").connect() as db:
        rows = db.execute(text("SELECT ts, load1 FROM samples ORDER BY ts DESC LIMIT 120")).all()
    return {"samples": [{"ts": ts, "load1": load1} for ts, load1 in rows]}


def reporter(ctx):
    samples = ctx.thread[-1].content["samples"]
    if not samples:
        return {"report": "no load samples yet: is the load-average sense running?"}
    loads = [sample["load1"] for sample in samples]
    return {
        "question": ctx.prompt,
        "report": (
            f"{len(loads)} samples: load now {loads[0]:.2f}, "
            f"mean {sum(loads) / len(loads):.2f}, peak {max(loads):.2f}"
        ),
    }


definition = WorkflowDefinition(moderator=moderator, roles={"reader": reader, "reporter": reporter})
