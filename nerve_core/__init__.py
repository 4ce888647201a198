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
        ConfigIssue as ConfigIssue,
    )
    from ._config import (
        ConfigIssues as ConfigIssues,
    )
    from ._config import (
        NerveConfig as NerveConfig,
    )
    from ._config import (
        Overflow as Overflow,
    )
    from ._config import (
        ReflexConfig as ReflexConfig,
    )
    from ._config import (
        SenseConfig as SenseConfig,
    )
    from ._config import (
        StoreConfig as StoreConfig,
    )
    from ._config import (
        Synchronous as Synchronous,
    )
    from ._config import (
        WorkflowConfig as WorkflowConfig,
    )
    from ._config import (
        load_nerve_config as load_nerve_config,
    )
    from ._config import (
        parse_nerve_config as parse_nerve_config,
    )
    from ._directive import (
        ComputeRoute as ComputeRoute,
    )
    from ._directive import (
        RouteKind as RouteKind,
    )
    from ._directive import (
        WorkflowDirective as WorkflowDirective,
    )
    from ._directive import (
        parse_sense_workflow_directive as parse_sense_workflow_directive,
    )
    from ._directive import (
        route_sense_compute_output as route_sense_compute_output,
    )
    from ._durations import format_duration as format_duration
    from ._durations import parse_duration as parse_duration
    from ._events import LogType as LogType
    from ._events import Signal as Signal
    from ._events import TriggerKind as TriggerKind
    from ._ipc import (
        MAX_LINE_BYTES as MAX_LINE_BYTES,
    )
    from ._ipc import (
        CancelWorkflowRequest as CancelWorkflowRequest,
    )
    from ._ipc import (
        CancelWorkflowResponse as CancelWorkflowResponse,
    )
    from ._ipc import (
        DaemonRequest as DaemonRequest,
    )
    from ._ipc import (
        ErrorResponse as ErrorResponse,
    )
    from ._ipc import (
        HealthRequest as HealthRequest,
    )
    from ._ipc import (
        HealthResponse as HealthResponse,
    )
    from ._ipc import (
        IpcError as IpcError,
    )
    from ._ipc import (
        IpcErrorCode as IpcErrorCode,
    )
    from ._ipc import (
        ListSensesRequest as ListSensesRequest,
    )
    from ._ipc import (
        ListSensesResponse as ListSensesResponse,
    )
    from ._ipc import (
        SenseInfo as SenseInfo,
    )
    from ._ipc import (
        TriggerSenseRequest as TriggerSenseRequest,
    )
    from ._ipc import (
        TriggerWorkflowRequest as TriggerWorkflowRequest,
    )
    from ._ipc import (
        TriggerWorkflowResponse as TriggerWorkflowResponse,
    )
    from ._ipc import (
        WorkerInfo as WorkerInfo,
    )
    from ._ipc import (
        encode_message as encode_message,
    )
    from ._ipc import (
        error_response as error_response,
    )
    from ._ipc import (
        parse_daemon_ipc_request as parse_daemon_ipc_request,
    )
    from ._ipc import (
        parse_daemon_ipc_response as parse_daemon_ipc_response,
    )
    from ._result import Err as Err
    from ._result import Ok as Ok
    from ._result import Result as Result
    from ._result import err as err
    from ._result import ok as ok
    from ._worker_protocol import (
        ComputeRequest as ComputeRequest,
    )
    from ._worker_protocol import (
        ComputeResult as ComputeResult,
    )
    from ._worker_protocol import (
        SenseLog as SenseLog,
    )
    from ._worker_protocol import (
        ShutdownRequest as ShutdownRequest,
    )
    from ._worker_protocol import (
        WorkerMessage as WorkerMessage,
    )
    from ._worker_protocol import (
        WorkerReady as WorkerReady,
    )
    from ._worker_protocol import (
        decode_worker_message as decode_worker_message,
    )
    from ._worker_protocol import (
        encode_worker_message as encode_worker_message,
    )
    from ._workspace import (
        NAME_PATTERN as NAME_PATTERN,
    )
    from ._workspace import (
        Workspace as Workspace,
    )
    from ._workspace import (
        check_name as check_name,
    )
    from ._workspace import (
        require_name as require_name,
    )
    from .workflow import (
        DEFAULT_ENGINE_MAX_ROUNDS as DEFAULT_ENGINE_MAX_ROUNDS,
    )
    from .workflow import (
        END as END,
    )
    from .workflow import (
        START as START,
    )
    from .workflow import (
        Moderator as Moderator,
    )
    from .workflow import (
        Role as Role,
    )
    from .workflow import (
        RoleContext as RoleContext,
    )
    from .workflow import (
        RunStatus as RunStatus,
    )
    from .workflow import (
        WorkflowDefinition as WorkflowDefinition,
    )
    from .workflow import (
        WorkflowMessage as WorkflowMessage,
    )

_EXPORTS = {
    "._config": (
        "ConfigIssue",
        "ConfigIssues",
        "NerveConfig",
        "Overflow",
        "ReflexConfig",
        "SenseConfig",
        "StoreConfig",
        "Synchronous",
        "WorkflowConfig",
        "load_nerve_config",
        "parse_nerve_config",
    ),
    "._directive": (
        "ComputeRoute",
        "RouteKind",
        "WorkflowDirective",
        "parse_sense_workflow_directive",
        "route_sense_compute_output",
    ),
    "._durations": ("format_duration", "parse_duration"),
    "._events": ("LogType", "Signal", "TriggerKind"),
    "._ipc": (
        "MAX_LINE_BYTES",
        "CancelWorkflowRequest",
        "CancelWorkflowResponse",
        "DaemonRequest",
        "ErrorResponse",
        "HealthRequest",
        "HealthResponse",
        "IpcError",
        "IpcErrorCode",
        "ListSensesRequest",
        "ListSensesResponse",
        "SenseInfo",
        "TriggerSenseRequest",
        "TriggerWorkflowRequest",
        "TriggerWorkflowResponse",
        "WorkerInfo",
        "encode_message",
        "error_response",
        "parse_daemon_ipc_request",
        "parse_daemon_ipc_response",
    ),
    "._result": ("Err", "Ok", "Result", "err", "ok"),
    "._worker_protocol": (
        "ComputeRequest",
        "ComputeResult",
        "SenseLog",
        "ShutdownRequest",
        "WorkerMessage",
        "WorkerReady",
        "decode_worker_message",
        "encode_worker_message",
    ),
    "._workspace": ("NAME_PATTERN", "Workspace", "check_name", "require_name"),
    ".workflow": (
        "DEFAULT_ENGINE_MAX_ROUNDS",
        "END",
        "START",
        "Moderator",
        "Role",
        "RoleContext",
        "RunStatus",
        "WorkflowDefinition",
        "WorkflowMessage",
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
