from nerve_core.workflow import END, START, WorkflowDefinition


def moderator(thread):  # type: ignore[no-untyped-def]
    return "echo" if thread[-1].role == START else END


def echo(ctx):  # type: ignore[no-untyped-def]
    return ctx.prompt


definition = WorkflowDefinition(moderator=moderator, roles={"echo": echo})
