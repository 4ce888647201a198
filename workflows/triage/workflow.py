"""triage: gathers facts from the sense databases, proposes a diagnosis, and reviews it, looping
until the reviewer is satisfied.

Three roles under a moderator that loops until a condition holds:

- `gatherer` reads recent samples from the cpu-usage and memory-usage databases (read-only),
  looking further back on each pass;
- `proposer` turns the facts into a diagnosis with a confidence that grows with the evidence;
- `reviewer` accepts a diagnosis backed by enough samples, or sends it back for more facts.

The moderator goes gatherer → proposer → reviewer, and back to the gatherer until the reviewer
accepts (or `max_rounds` ends the run as failed). Deterministic and offline: start it with
`nerve workflow trigger triage --prompt "why is the machine slow?"`.
"""

from sqlalchemy import text

from nerve_core.workflow import END, START, WorkflowDefinition

SAMPLES_PER_PASS = 12  # one minute of 5 s samples per pass
MIN_SAMPLES = 24
SOURCES = ("cpu-usage", "memory-usage")


def moderator(thread):
    last = thread[-1]
    if last.role in (START, "reviewer") and not _accepted(last):
        return "gatherer"
    if last.role == "gatherer":
        return "proposer"
    if last.role == "proposer":
        return "reviewer"
    return END


def _accepted(message):
    return message.role == "reviewer" and message.content["accepted"]


def gatherer(ctx):
    passes = sum(1 for message in ctx.thread if message.role == "gatherer") + 1
    window = SAMPLES_PER_PASS * passes
    facts = {}
    for sense in SOURCES:
        try:
            with ctx.peer(sense).connect() as db:
                rows = db.execute(
                    text("SELECT percent FROM samples ORDER BY ts DESC LIMIT :n"), {"n": window}
                ).scalars()
                facts[sense] = list(rows)
        except Exception as error:  # the sense has not run yet: no database
            facts[sense] = []
            ctx.log("warning", "no samples", sense=sense, error=str(error))
    return {"pass": passes, "window": window, "facts": facts}


def proposer(ctx):
    gathered = ctx.thread[-1].content
    averages = {
        sense: (sum(values) / len(values) if values else None)
        for sense, values in gathered["facts"].items()
    }
    known = {sense: value for sense, value in averages.items() if value is not None}
    if not known:
        diagnosis = "no data yet"
    else:
        sense, value = max(known.items(), key=lambda item: item[1])
        diagnosis = f"{sense} is the main pressure ({value:.1f} % on average)"
    samples = min((len(values) for values in gathered["facts"].values()), default=0)
    return {
        "question": ctx.prompt,
        "diagnosis": diagnosis,
        "averages": averages,
        "samples": samples,
        "confidence": min(1.0, samples / MIN_SAMPLES),
    }


def reviewer(ctx):
    proposal = ctx.thread[-1].content
    gathered = ctx.thread[-2].content
    enough = proposal["samples"] >= MIN_SAMPLES
    # Looking further back cannot help once a pass found fewer samples than it asked for.
    exhausted = proposal["samples"] < gathered["window"]
    accepted = enough or exhausted
    if enough:
        verdict = "accepted"
    elif exhausted:
        verdict = f"accepted with low confidence: only {proposal['samples']} samples exist"
    else:
        verdict = "more facts needed"
    return {"accepted": accepted, "verdict": verdict, "diagnosis": proposal["diagnosis"]}


definition = WorkflowDefinition(
    moderator=moderator,
    roles={"gatherer": gatherer, "proposer": proposer, "reviewer": reviewer},
)
