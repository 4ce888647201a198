"""Options shared by every command, and the state the global ones leave for the subcommands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Workspace folder (default: NERVE_ROOT, else the nearest folder up with nerve.yaml).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@dataclass(slots=True)
class CliState:
    root: Path | None = None
    debug: bool = False


state = CliState()


def workspace_root(root: Path | None) -> Path | None:
    """The `--root` of the subcommand when given, else the one given to `nerve` itself."""
    return root if root is not None else state.root


InOption = Annotated[
    str | None,
    typer.Option(
        "--in", help="Delay it: due after this long (10m, 1h30m); durable.", show_default=False
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="An idempotency key: retried with the same key, it is the same trigger (not with "
        "--in/--at).",
        show_default=False,
    ),
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Delay it: due at this time (HH:MM, the next one; or ISO 8601); durable.",
        show_default=False,
    ),
]


def check_key(key: str | None, delayed: bool) -> None:
    """`--key`: 1 to 200 characters, and not for a delayed trigger (its timer id names it)."""
    if key is None:
        return
    if delayed:
        raise typer.BadParameter(
            "a delayed trigger takes no key: its timer id names it", param_hint="--key"
        )
    if not 1 <= len(key) <= 200:
        raise typer.BadParameter("a key has 1 to 200 characters", param_hint="--key")
