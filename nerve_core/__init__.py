"""nerve_core: the contracts between nerve's parts.

Types, the nerve.yaml parser, durations, names and workspace paths, directive routing, the IPC
protocol and the workflow types. It does no I/O beyond reading text and imports nothing of the
other nerve packages. Names are loaded on first use, so `import nerve_core` stays cheap for the
CLI's fast paths.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import (
        ConfigIssue,
        ConfigIssues,
        NerveConfig,
        Overflow,
        ReflexConfig,
        SenseConfig,
        StoreConfig,
        Synchronous,
        WorkflowConfig,
        load_nerve_config,
        parse_nerve_config,
    )
    from ._directive import (
        ComputeRoute,
        RouteKind,
        WorkflowDirective,
        parse_sense_workflow_directive,
        route_sense_compute_output,
    )
    from ._durations import format_duration, parse_duration
    from ._events import LogType, Signal, TriggerKind
    from ._ipc import (
        MAX_LINE_BYTES,
        CancelWorkflowRequest,
        CancelWorkflowResponse,
        DaemonRequest,
        ErrorResponse,
        HealthRequest,
        HealthResponse,
        IpcError,
        IpcErrorCode,
        ListSensesRequest,
        ListSensesResponse,
        SenseInfo,
        TriggerSenseRequest,
        TriggerWorkflowRequest,
        TriggerWorkflowResponse,
        WorkerInfo,
        encode_message,
        error_response,
        parse_daemon_ipc_request,
        parse_daemon_ipc_response,
    )
    from ._result import Err, Ok, Result, err, ok
    from ._workspace import NAME_PATTERN, Workspace, check_name, require_name
    from .workflow import (
        DEFAULT_ENGINE_MAX_ROUNDS,
        END,
        START,
        Moderator,
        Role,
        RoleContext,
        RunStatus,
        WorkflowDefinition,
        WorkflowMessage,
    )

_EXPORTS = {
    "._config": (
        "ConfigIssue", "ConfigIssues", "NerveConfig", "Overflow", "ReflexConfig", "SenseConfig",
        "StoreConfig", "Synchronous", "WorkflowConfig", "load_nerve_config", "parse_nerve_config",
    ),
    "._directive": (
        "ComputeRoute", "RouteKind", "WorkflowDirective", "parse_sense_workflow_directive",
        "route_sense_compute_output",
    ),
    "._durations": ("format_duration", "parse_duration"),
    "._events": ("LogType", "Signal", "TriggerKind"),
    "._ipc": (
        "MAX_LINE_BYTES", "CancelWorkflowRequest", "CancelWorkflowResponse", "DaemonRequest",
        "ErrorResponse", "HealthRequest", "HealthResponse", "IpcError", "IpcErrorCode",
        "ListSensesRequest", "ListSensesResponse", "SenseInfo", "TriggerSenseRequest",
        "TriggerWorkflowRequest", "TriggerWorkflowResponse", "WorkerInfo", "encode_message",
        "error_response", "parse_daemon_ipc_request", "parse_daemon_ipc_response",
    ),
    "._result": ("Err", "Ok", "Result", "err", "ok"),
    "._workspace": ("NAME_PATTERN", "Workspace", "check_name", "require_name"),
    ".workflow": (
        "DEFAULT_ENGINE_MAX_ROUNDS", "END", "START", "Moderator", "Role", "RoleContext",
        "RunStatus", "WorkflowDefinition", "WorkflowMessage",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'nerve_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
