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
        CatchUp as CatchUp,
        ConfigIssue as ConfigIssue,
        ConfigIssues as ConfigIssues,
        Evict as Evict,
        GroupConfig as GroupConfig,
        LimitsConfig as LimitsConfig,
        NerveConfig as NerveConfig,
        OnStall as OnStall,
        Overflow as Overflow,
        ReflexConfig as ReflexConfig,
        ReloadMode as ReloadMode,
        RetryConfig as RetryConfig,
        SenseConfig as SenseConfig,
        StoreConfig as StoreConfig,
        Synchronous as Synchronous,
        WorkflowConfig as WorkflowConfig,
        load_nerve_config as load_nerve_config,
        parse_nerve_config as parse_nerve_config,
    )
    from ._directive import (
        ComputeRoute as ComputeRoute,
        RouteKind as RouteKind,
        WorkflowDirective as WorkflowDirective,
        parse_sense_workflow_directive as parse_sense_workflow_directive,
        route_sense_compute_output as route_sense_compute_output,
    )
    from ._durations import (
        format_duration as format_duration,
        parse_duration as parse_duration,
    )
    from ._events import (
        KERNEL_SIGNALS as KERNEL_SIGNALS,
        LogType as LogType,
        Signal as Signal,
        TriggerKind as TriggerKind,
        WorkerState as WorkerState,
    )
    from ._ipc import (
        MAX_LINE_BYTES as MAX_LINE_BYTES,
        CancelTimerRequest as CancelTimerRequest,
        CancelWorkflowRequest as CancelWorkflowRequest,
        CancelWorkflowResponse as CancelWorkflowResponse,
        DaemonRequest as DaemonRequest,
        ErrorResponse as ErrorResponse,
        ExplainRequest as ExplainRequest,
        ExplainResponse as ExplainResponse,
        HealthRequest as HealthRequest,
        HealthResponse as HealthResponse,
        IpcError as IpcError,
        IpcErrorCode as IpcErrorCode,
        ListSensesRequest as ListSensesRequest,
        ListSensesResponse as ListSensesResponse,
        ListTimersRequest as ListTimersRequest,
        ListTimersResponse as ListTimersResponse,
        OkResponse as OkResponse,
        ProgressInfo as ProgressInfo,
        ReloadPlanRequest as ReloadPlanRequest,
        ReloadRequest as ReloadRequest,
        ReloadResponse as ReloadResponse,
        SenseInfo as SenseInfo,
        TimerInfo as TimerInfo,
        TimerResponse as TimerResponse,
        TriggerPayload as TriggerPayload,
        TriggerSenseRequest as TriggerSenseRequest,
        TriggerWorkflowRequest as TriggerWorkflowRequest,
        TriggerWorkflowResponse as TriggerWorkflowResponse,
        WorkerInfo as WorkerInfo,
        encode_message as encode_message,
        error_response as error_response,
        parse_daemon_ipc_request as parse_daemon_ipc_request,
        parse_daemon_ipc_response as parse_daemon_ipc_response,
        split_trigger_payload as split_trigger_payload,
    )
    from ._rates import MAX_RATE_COUNT as MAX_RATE_COUNT, parse_rate as parse_rate
    from ._result import (
        Err as Err,
        Ok as Ok,
        Result as Result,
        err as err,
        ok as ok,
    )
    from ._sizes import parse_size as parse_size
    from ._worker_protocol import (
        CancelThread as CancelThread,
        ComputeRequest as ComputeRequest,
        ComputeResult as ComputeResult,
        LimitGrant as LimitGrant,
        LimitRequest as LimitRequest,
        MessageAck as MessageAck,
        Progress as Progress,
        RunLog as RunLog,
        SenseLog as SenseLog,
        ShutdownRequest as ShutdownRequest,
        StartThread as StartThread,
        ThreadEnd as ThreadEnd,
        ThreadMessage as ThreadMessage,
        WorkerMessage as WorkerMessage,
        WorkerReady as WorkerReady,
        check_progress as check_progress,
        decode_worker_message as decode_worker_message,
        encode_worker_message as encode_worker_message,
    )
    from ._workspace import (
        NAME_PATTERN as NAME_PATTERN,
        Workspace as Workspace,
        check_name as check_name,
        require_name as require_name,
    )
    from .workflow import (
        DEFAULT_ENGINE_MAX_ROUNDS as DEFAULT_ENGINE_MAX_ROUNDS,
        END as END,
        START as START,
        Moderator as Moderator,
        Role as Role,
        RoleContext as RoleContext,
        RunStatus as RunStatus,
        WorkflowDefinition as WorkflowDefinition,
        WorkflowMessage as WorkflowMessage,
    )

_EXPORTS = {
    "._config": (
        "CatchUp",
        "ConfigIssue",
        "ConfigIssues",
        "Evict",
        "GroupConfig",
        "LimitsConfig",
        "NerveConfig",
        "OnStall",
        "Overflow",
        "ReflexConfig",
        "SenseConfig",
        "StoreConfig",
        "ReloadMode",
        "RetryConfig",
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
    "._events": ("KERNEL_SIGNALS", "LogType", "Signal", "TriggerKind", "WorkerState"),
    "._ipc": (
        "MAX_LINE_BYTES",
        "CancelTimerRequest",
        "CancelWorkflowRequest",
        "CancelWorkflowResponse",
        "ListTimersRequest",
        "ListTimersResponse",
        "TimerInfo",
        "TimerResponse",
        "DaemonRequest",
        "ErrorResponse",
        "ExplainRequest",
        "ExplainResponse",
        "ReloadPlanRequest",
        "ReloadRequest",
        "ReloadResponse",
        "HealthRequest",
        "HealthResponse",
        "IpcError",
        "IpcErrorCode",
        "ListSensesRequest",
        "ListSensesResponse",
        "OkResponse",
        "ProgressInfo",
        "SenseInfo",
        "TriggerSenseRequest",
        "TriggerWorkflowRequest",
        "TriggerWorkflowResponse",
        "TriggerPayload",
        "WorkerInfo",
        "encode_message",
        "error_response",
        "parse_daemon_ipc_request",
        "parse_daemon_ipc_response",
        "split_trigger_payload",
    ),
    "._rates": ("MAX_RATE_COUNT", "parse_rate"),
    "._result": ("Err", "Ok", "Result", "err", "ok"),
    "._sizes": ("parse_size",),
    "._worker_protocol": (
        "ComputeRequest",
        "Progress",
        "RunLog",
        "ThreadEnd",
        "MessageAck",
        "ThreadMessage",
        "CancelThread",
        "StartThread",
        "ComputeResult",
        "LimitGrant",
        "LimitRequest",
        "SenseLog",
        "ShutdownRequest",
        "WorkerMessage",
        "WorkerReady",
        "check_progress",
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
