"""Importing the code users write: `senses/<name>/compute.py` and `workflows/<name>/workflow.py`.

A module is imported from its file under a private module name, fresh each time it is loaded in a
new process. Whatever goes wrong (missing file, syntax error, an exception at import, no
`compute` or `definition`) becomes a `UserModuleError` whose message names the file and, when
known, the line: the CLI prints it as is, the workers report it as that sense's or workflow's
error.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from nerve_core import Workspace
from nerve_core.errors import UserModuleError
from nerve_core.workflow import WorkflowDefinition


def load_sense_compute(workspace: Workspace, name: str) -> Callable[..., Any]:
    """The `compute` function of sense `name`, checked to accept one argument (ctx)."""
    path = workspace.sense_module(name)
    shown = workspace.relative(path)
    module = import_user_module(path, f"nerve_sense_{name.replace('-', '_')}", shown)
    compute = getattr(module, "compute", None)
    if compute is None:
        raise UserModuleError(f"{shown}: defines no `compute(ctx)` function")
    if not callable(compute):
        raise UserModuleError(f"{shown}: `compute` is a {type(compute).__name__}, not a function")
    try:
        inspect.signature(compute).bind(None)
    except TypeError:
        raise UserModuleError(f"{shown}: `compute` must take exactly one argument, ctx") from None
    except ValueError:
        pass  # no signature to inspect (a builtin or C callable): let the call decide
    return compute  # type: ignore[no-any-return]


def load_workflow_definition(workspace: Workspace, name: str) -> WorkflowDefinition:
    """The `definition` of workflow `name`."""
    path = workspace.workflow_module(name)
    shown = workspace.relative(path)
    module = import_user_module(path, f"nerve_workflow_{name.replace('-', '_')}", shown)
    definition = getattr(module, "definition", None)
    if definition is None:
        raise UserModuleError(f"{shown}: defines no `definition = WorkflowDefinition(...)`")
    if not isinstance(definition, WorkflowDefinition):
        raise UserModuleError(
            f"{shown}: `definition` is a {type(definition).__name__}, not a WorkflowDefinition"
        )
    return definition


def import_user_module(path: Path, module_name: str, shown: str) -> ModuleType:
    """Import the file at `path` as `module_name`; `shown` is how messages name the file."""
    if not path.is_file():
        raise UserModuleError(f"{shown}: missing")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserModuleError(f"{shown}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise UserModuleError(f"{shown}:{exc.lineno}: SyntaxError: {exc.msg}") from None
    except (Exception, SystemExit) as exc:
        del sys.modules[module_name]
        line = _line_in(exc, path)
        where = f"{shown}:{line}" if line else shown
        raise UserModuleError(f"{where}: {type(exc).__name__} at import: {exc}") from exc
    return module


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The deepest line of `path` in the traceback of `exc`: where the user's code failed."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return line
