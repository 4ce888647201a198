"""A one-role workflow whose role holds its slot until the test writes `go` beside it."""

import time
from pathlib import Path

from nerve_core.workflow import END, START, WorkflowDefinition

GO = Path(__file__).parent / "go"


def moderator(thread):
    return "hold" if thread[-1].role == START else END


def hold(ctx):  # holds its slot until the test says go
    while not GO.exists():
        time.sleep(0.05)
    return ctx.prompt


definition = WorkflowDefinition(moderator=moderator, roles={"hold": hold})
