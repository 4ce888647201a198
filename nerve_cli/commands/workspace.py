"""`nerve init` and `nerve validate`: creating a workspace and checking one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..options import JsonOption, RootOption, workspace_root

SCAFFOLD_PACKAGE = "nerve_cli.scaffold"


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("validate")(validate)


def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the new workspace (created if missing).")
    ] = Path("."),
) -> None:
    """Scaffold a workspace: nerve.yaml, one sense and one workflow."""
    from importlib.resources import files
    from importlib.resources.abc import Traversable

    from nerve_core.errors import WorkspaceError

    from ..output import say

    target = directory.expanduser().absolute()
    template = files(SCAFFOLD_PACKAGE) / "workspace-template"

    def walk(node: Traversable, prefix: Path) -> list[tuple[Path, bytes]]:
        found: list[tuple[Path, bytes]] = []
        for child in sorted(node.iterdir(), key=lambda item: item.name):
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                found.extend(walk(child, prefix / child.name))
            else:
                name = (
                    "." + child.name.removeprefix("dot-")
                    if child.name.startswith("dot-")
                    else child.name
                )
                found.append((prefix / name, child.read_bytes()))
        return found

    scaffold = walk(template, Path())
    clashes = [str(path) for path, _ in scaffold if (target / path).exists()]
    if clashes:
        raise WorkspaceError(f"{target}: already holds {', '.join(clashes)}; nothing was changed")
    for path, content in scaffold:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(content)
    say(f"Created a nerve workspace in {target}:")
    for path, _ in scaffold:
        say(f"  {path}")
    say(f"Next: cd {target} && nerve validate && nerve dev")


def validate(
    root: RootOption = None,
    as_json: JsonOption = False,
    import_timeout: Annotated[
        float, typer.Option("--import-timeout", help="Seconds allowed to import all modules.")
    ] = 30.0,
) -> None:
    """Check nerve.yaml and every sense and workflow module; exit 1 listing every problem."""
    from nerve_core import load_nerve_config
    from nerve_core.errors import ConfigError

    from ..module_check import ModuleTarget, check_modules
    from ..output import counted, error_console, print_json, say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    problems: list[str] = []
    summary = ""
    try:
        config = load_nerve_config(workspace.config_path)
    except ConfigError as exc:
        problems = [str(issue) for issue in exc.issues]
    else:
        targets = [ModuleTarget("sense", name) for name in config.senses]
        targets += [ModuleTarget("workflow", name) for name in config.workflows]
        problems = check_modules(workspace.root, targets, timeout=import_timeout)
        groups = counted(len(config.sense_groups()), "group")
        summary = ", ".join(
            (
                f"{counted(len(config.senses), 'sense')} in {groups}",
                counted(len(config.reflexes), "reflex", "reflexes"),
                counted(len(config.workflows), "workflow"),
            )
        )
    if as_json:
        print_json({"ok": not problems, "root": str(workspace.root), "problems": problems})
    elif problems:
        for problem in problems:
            error_console().print(problem, markup=False)
        error_console().print(
            f"{counted(len(problems), 'problem')} in {workspace.root}", markup=False
        )
    else:
        say(f"ok: {workspace.root}: {summary}")
    if problems:
        raise typer.Exit(1)
