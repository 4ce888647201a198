"""The `nerve` command: the typer app, the global options, and the one place where errors become
exit codes (0 success, 1 error, 2 usage, 3 daemon not running)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .commands import (
    daemon,
    dev,
    explain,
    reload,
    sense,
    store,
    timers,
    workflow,
    workspace as workspace_commands,
)
from .options import RootOption, state

EXIT_ERROR = 1
EXIT_DAEMON_NOT_RUNNING = 3

app = typer.Typer(
    name="nerve",
    help="nerve: a local daemon that watches a machine and the world around it, and acts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _global_options(
    root: RootOption = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    state.root = root
    state.debug = debug


workspace_commands.register(app)
dev.register(app)
daemon.register(app)
sense.register(app)
workflow.register(app)
store.register(app)
explain.register(app)
reload.register(app)
timers.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    from nerve_core.errors import DaemonNotRunning, NerveError

    try:
        app(args=argv, prog_name="nerve")
    except DaemonNotRunning as exc:
        _fail(exc, EXIT_DAEMON_NOT_RUNNING)
    except NerveError as exc:
        _fail(exc, EXIT_ERROR)
    except BaseExceptionGroup as group:  # a task group of the kernel's, failing on a user error
        leaves = _leaves(group)
        if not leaves or not all(isinstance(leaf, NerveError) for leaf in leaves):
            raise
        _fail(leaves[0], EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _fail(exc: BaseException, code: int) -> None:
    from .output import print_error

    if state.debug or "--debug" in sys.argv:
        import traceback

        traceback.print_exception(exc)
    print_error(str(exc))
    sys.exit(code)
