"""The daemon IPC protocol (CLI ↔ daemon): one JSON object per line each way, camelCase fields.

Both ends import these models; no message is spelled as a dict literal anywhere else. The server
parses each line with `parse_daemon_ipc_request`, which never raises: a malformed line becomes an
`IpcError` with a code, answered with `error_response`, and the connection goes on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ._fields import MAX_REQUEST_ID, MAX_ROUNDS, Name, Rounds
from ._result import Result, err, ok
from .workflow import RunStatus

MAX_LINE_BYTES = 1 << 20  # a longer line is refused, unread past this bound
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

RequestId: TypeAlias = (
    Annotated[StrictStr, Field(max_length=256)]
    | Annotated[StrictInt, Field(ge=-MAX_REQUEST_ID, le=MAX_REQUEST_ID)]
)


Timestamp: TypeAlias = Annotated[StrictInt, Field(ge=0, le=MAX_TIMESTAMP_MS)]
# An idempotency key: a retried trigger with the same key is the same trigger.
Key: TypeAlias = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class IpcErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    UNKNOWN_SENSE = "unknown_sense"
    UNKNOWN_WORKFLOW = "unknown_workflow"
    UNKNOWN_RUN = "unknown_run"
    UNKNOWN_SIGNAL = "unknown_signal"
    UNKNOWN_TIMER = "unknown_timer"
    UNAVAILABLE = "unavailable"  # e.g. too many connections; logs.db cannot be written now
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class IpcError:
    code: IpcErrorCode
    message: str
    id: RequestId | None = None


class _Message(BaseModel):
    # defer_build: a model's validator is built on its first use, so a CLI command pays only
    # for the two messages it exchanges, not for the whole protocol.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        defer_build=True,
    )


# -- requests -----------------------------------------------------------------------------------


class _Request(_Message):
    id: RequestId | None = None


class TriggerWorkflowRequest(_Request):
    type: Literal["trigger-workflow"] = "trigger-workflow"
    workflow: Name
    prompt: StrictStr = ""
    max_rounds: Rounds | None = None
    payload: Any = None
    at: Timestamp | None = None  # ms since the epoch: a delayed trigger, due then (durable)
    key: Key | None = None  # idempotency: one run per workflow and key (not with `at`)

    @model_validator(mode="after")
    def _key_not_delayed(self) -> TriggerWorkflowRequest:
        return _no_key_with_at(self)


class TriggerSenseRequest(_Request):
    type: Literal["trigger-sense"] = "trigger-sense"
    sense: Name
    at: Timestamp | None = None  # ms since the epoch: a delayed trigger, due then (durable)
    key: Key | None = None  # idempotency: the same key within 10 minutes is one trigger

    @model_validator(mode="after")
    def _key_not_delayed(self) -> TriggerSenseRequest:
        return _no_key_with_at(self)


Keyed = TypeVar("Keyed", TriggerWorkflowRequest, TriggerSenseRequest)


def _no_key_with_at(request: Keyed) -> Keyed:
    if request.key is not None and request.at is not None:
        raise ValueError("a delayed trigger (at) takes no key: its timer id names it")
    return request


class ListTimersRequest(_Request):
    """The delayed triggers not yet due, soonest first."""

    type: Literal["list-timers"] = "list-timers"


class CancelTimerRequest(_Request):
    type: Literal["cancel-timer"] = "cancel-timer"
    timer_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]


class ListSensesRequest(_Request):
    type: Literal["list-senses"] = "list-senses"


class HealthRequest(_Request):
    type: Literal["health"] = "health"


class ReloadPlanRequest(_Request):
    """What `reload` would do now, without doing it."""

    type: Literal["reload-plan"] = "reload-plan"


class ReloadRequest(_Request):
    """Apply the workspace's nerve.yaml and the files changed since (`reload: manual`)."""

    type: Literal["reload"] = "reload"


class ExplainRequest(_Request):
    """`nerve explain`: a sense (`whyNot`: why it has not computed since `since`, ms since the
    epoch; by default since its sources' last signal, or its own last compute), a run or a
    signal, by name or id."""

    type: Literal["explain"] = "explain"
    what: Literal["sense", "run", "signal"]
    name: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    why_not: StrictBool = False
    since: Timestamp | None = None


class CancelWorkflowRequest(_Request):
    type: Literal["cancel-workflow"] = "cancel-workflow"
    run_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]


DaemonRequest: TypeAlias = Annotated[
    TriggerWorkflowRequest
    | TriggerSenseRequest
    | ListSensesRequest
    | HealthRequest
    | CancelWorkflowRequest
    | ExplainRequest
    | ReloadPlanRequest
    | ReloadRequest
    | ListTimersRequest
    | CancelTimerRequest,
    Field(discriminator="type"),
]


@functools.cache
def _requests() -> TypeAdapter[DaemonRequest]:
    return TypeAdapter(DaemonRequest)


REQUEST_TYPES = (
    "trigger-workflow",
    "trigger-sense",
    "list-senses",
    "health",
    "cancel-workflow",
    "explain",
    "reload-plan",
    "reload",
    "list-timers",
    "cancel-timer",
)


# -- responses ----------------------------------------------------------------------------------


class ErrorBody(_Message):
    code: StrictStr
    message: StrictStr


class ErrorResponse(_Message):
    ok: Literal[False] = False
    id: RequestId | None = None
    error: ErrorBody


class OkResponse(_Message):
    ok: Literal[True] = True
    id: RequestId | None = None


class TriggerWorkflowResponse(OkResponse):
    run_id: StrictStr
    status: RunStatus
    existing: StrictBool = False  # its key named a run launched before: that run, its status now


class TimerInfo(_Message):
    """A delayed trigger: `kind` "sense" or "workflow", due at `due` (ms since the epoch)."""

    timer_id: str
    kind: str
    target: str
    due: int
    created: int
    request: Any = None  # a workflow run's prompt, maxRounds and payload


class TimerResponse(OkResponse):
    """The answer to a trigger with `at`: the delayed trigger, committed."""

    timer: TimerInfo


class ListTimersResponse(OkResponse):
    timers: list[TimerInfo]


class ProgressInfo(_Message):
    """What a compute or run last said of its progress (`ctx.progress`)."""

    fraction: float  # 0 to 1
    note: StrictStr = ""
    at: StrictInt  # ms since the epoch, when the daemon heard it


class SenseInfo(_Message):
    name: StrictStr
    group: StrictStr
    worker_pid: StrictInt | None = None
    state: StrictStr
    last_run_at: StrictInt | None = None  # ms since the epoch, UTC
    last_status: StrictStr | None = None
    last_duration_ms: float | None = None
    computes: StrictInt = 0
    errors: StrictInt = 0
    progress: ProgressInfo | None = None  # of its compute in flight, if it reported any


class ListSensesResponse(OkResponse):
    senses: list[SenseInfo]


class WorkerInfo(_Message):
    kind: Literal["fork-server", "sense-group", "workflow"]
    name: StrictStr
    pid: StrictInt | None = None
    state: StrictStr
    restarts: StrictInt = 0
    # how its group's memory limit is enforced: "cgroup v1", "cgroup v2", "poll" (None: no limit)
    memory_limit: StrictStr | None = None
    memory_limit_why: StrictStr | None = None  # why "poll": no cgroup could be used, or config


class HealthResponse(OkResponse):
    pid: StrictInt
    uptime_s: float
    version: StrictStr
    senses: StrictInt
    sense_names: list[StrictStr] = Field(default_factory=list)  # as nerve.yaml declares them
    workers: list[WorkerInfo]
    store_error: StrictStr | None = None  # why logs.db cannot be written now, if it cannot
    store_damage: StrictStr | None = None  # damaged pages the check after the start found
    run_progress: dict[str, ProgressInfo] = Field(default_factory=dict)  # run id → its report
    # run id → seconds since its last message, for the runs past their workflow's stall_after
    stalled_runs: dict[str, float] = Field(default_factory=dict)
    # ctx.limit() name → {rate, inWindow, nextFreeInS}: the calls granted in its window now
    rate_limits: dict[str, dict[str, Any]] = Field(default_factory=dict)


class CancelWorkflowResponse(OkResponse):
    status: RunStatus


class ReloadResponse(OkResponse):
    plan: dict[str, Any]  # see the README's `nerve reload`
    applied: StrictBool  # False for `reload-plan`


class ExplainResponse(OkResponse):
    explanation: dict[str, Any]  # see the README's `nerve explain`


Response = TypeVar("Response", bound=OkResponse)


# -- functions ----------------------------------------------------------------------------------


def parse_daemon_ipc_request(line: bytes | str) -> Result[DaemonRequest, IpcError]:
    """The request on one line, or an `IpcError` (echoing the `id` when it could be read)."""
    try:
        raw = line.encode("utf-8") if isinstance(line, str) else line
    except UnicodeEncodeError:
        return err(IpcError(IpcErrorCode.BAD_REQUEST, "the line is not valid UTF-8"))
    if len(raw) > MAX_LINE_BYTES:
        return err(
            IpcError(IpcErrorCode.TOO_LARGE, f"a request line is limited to {MAX_LINE_BYTES} bytes")
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return err(IpcError(IpcErrorCode.BAD_REQUEST, f"not valid JSON: {exc}"))
    if not isinstance(data, dict):
        return err(IpcError(IpcErrorCode.BAD_REQUEST, "a request must be a JSON object"))
    request_id = data.get("id")
    if not _echoable(request_id):
        request_id = None
    kind = data.get("type")
    if not isinstance(kind, str):
        return err(
            IpcError(IpcErrorCode.BAD_REQUEST, 'a request needs a string field "type"', request_id)
        )
    if kind not in REQUEST_TYPES:
        known = ", ".join(REQUEST_TYPES)
        return err(
            IpcError(
                IpcErrorCode.UNKNOWN_TYPE,
                f'unknown request type "{kind[:64]}" (known: {known})',
                request_id,
            )
        )
    try:
        return ok(_requests().validate_python(data))
    except ValidationError as exc:
        return err(IpcError(IpcErrorCode.BAD_REQUEST, _describe(exc), request_id))


@dataclass(frozen=True, slots=True)
class TriggerPayload:
    """A trigger's `--payload` taken apart: the prompt and round cap it carries, and the rest."""

    prompt: str | None
    max_rounds: int | None
    rest: Any


def split_trigger_payload(payload: Any) -> Result[TriggerPayload, str]:
    """`{"prompt": "…", "maxRounds": 50, …}` as the seed's `--payload` form passes them: the
    prompt (a string) and the round cap (1 to 1,000,000) come out, the other fields stay the
    run's payload (None when nothing is left). Anything but an object is the payload whole."""
    if not isinstance(payload, dict):
        return ok(TriggerPayload(None, None, payload))
    prompt = payload.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        return err(f'"prompt" must be a string, got {type(prompt).__name__}')
    rounds = payload.get("maxRounds")
    if rounds is not None and (
        isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS
    ):
        return err(f'"maxRounds" must be a whole number from 1 to {MAX_ROUNDS}, got {rounds!r}')
    rest = {key: value for key, value in payload.items() if key not in ("prompt", "maxRounds")}
    return ok(TriggerPayload(prompt, rounds, rest or None))


def _echoable(request_id: object) -> bool:
    """Whether an `id` can be echoed back in an error (the bounds of `RequestId`)."""
    if isinstance(request_id, str):
        return len(request_id) <= 256
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return abs(request_id) <= MAX_REQUEST_ID
    return False


def encode_message(message: _Message) -> bytes:
    """One protocol line (with its newline) for a request or a response."""
    return orjson.dumps(message.model_dump(mode="json", by_alias=True)) + b"\n"


def error_response(error: IpcError) -> ErrorResponse:
    return ErrorResponse(id=error.id, error=ErrorBody(code=error.code, message=error.message))


def parse_daemon_ipc_response(line: bytes, expected: type[Response]) -> Result[Response, ErrorBody]:
    """The client's side: the `expected` response, or the daemon's error (or a protocol one)."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return err(
            ErrorBody(code=IpcErrorCode.BAD_REQUEST, message=f"daemon sent invalid JSON: {exc}")
        )
    try:
        if isinstance(data, dict) and data.get("ok") is False:
            return err(ErrorResponse.model_validate(data).error)
        return ok(expected.model_validate(data))
    except ValidationError as exc:
        return err(
            ErrorBody(
                code=IpcErrorCode.BAD_REQUEST, message=f"unexpected response: {_describe(exc)}"
            )
        )


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False)[:3]:
        field = ".".join(str(part) for part in error["loc"][1:] or error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f'"{field}": {message}' if field else message)
    return "; ".join(problems)
