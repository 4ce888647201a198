from __future__ import annotations

import orjson
import pytest

from nerve_core import (
    MAX_LINE_BYTES,
    CancelTimerRequest,
    CancelWorkflowRequest,
    HealthResponse,
    IpcError,
    IpcErrorCode,
    ListSensesRequest,
    ListTimersRequest,
    RunStatus,
    TriggerSenseRequest,
    TriggerWorkflowRequest,
    TriggerWorkflowResponse,
    WorkerInfo,
    encode_message,
    error_response,
    parse_daemon_ipc_request,
    parse_daemon_ipc_response,
)


def error_of(line: bytes | str) -> IpcError:
    parsed = parse_daemon_ipc_request(line)
    assert not parsed.ok, f"expected {line!r} to be refused"
    return parsed.error


def test_every_request_type_of_the_design_parses() -> None:
    lines = {
        b'{"type":"trigger-workflow","workflow":"cleanup","prompt":"p","maxRounds":50}': (
            TriggerWorkflowRequest
        ),
        b'{"type":"trigger-sense","sense":"cpu-usage"}': TriggerSenseRequest,
        b'{"type":"list-senses"}': ListSensesRequest,
        b'{"type":"cancel-workflow","runId":"r-1"}': CancelWorkflowRequest,
    }
    for line, model in lines.items():
        parsed = parse_daemon_ipc_request(line)
        assert parsed.ok, parsed
        assert isinstance(parsed.value, model)


def test_trigger_workflow_fields_are_read_in_camel_case() -> None:
    parsed = parse_daemon_ipc_request(
        '{"type":"trigger-workflow","workflow":"cleanup","prompt":"full","maxRounds":7,"id":"a1"}'
    )
    assert parsed.ok
    request = parsed.value
    assert isinstance(request, TriggerWorkflowRequest)
    assert (request.workflow, request.prompt, request.max_rounds, request.id) == (
        "cleanup",
        "full",
        7,
        "a1",
    )


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"not json", IpcErrorCode.BAD_REQUEST),
        (b"", IpcErrorCode.BAD_REQUEST),
        (b"[1,2]", IpcErrorCode.BAD_REQUEST),
        (b'"health"', IpcErrorCode.BAD_REQUEST),
        (b'{"id":1}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":5}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"reboot"}', IpcErrorCode.UNKNOWN_TYPE),
        (b'{"type":"trigger-sense"}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"trigger-sense","sense":5}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"trigger-sense","sense":"../etc"}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"trigger-workflow","workflow":"w","maxRounds":0}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"trigger-workflow","workflow":"w","maxRounds":"5"}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"health","extra":1}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"cancel-workflow","runId":""}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"health"}\xff', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"health","n":NaN}', IpcErrorCode.BAD_REQUEST),
        (b'{"type":"health","n":99999999999999999999999999}', IpcErrorCode.BAD_REQUEST),
        (b"[" * 5000 + b"]" * 5000, IpcErrorCode.BAD_REQUEST),
    ],
)
def test_malformed_lines_get_an_error_code(line: bytes, code: IpcErrorCode) -> None:
    assert error_of(line).code is code


def test_the_request_id_is_echoed_in_errors_when_it_can_be_read() -> None:
    assert error_of(b'{"type":"reboot","id":42}').id == 42
    assert error_of(b'{"type":"trigger-sense","id":"x"}').id == "x"
    assert error_of(b'{"type":"trigger-sense","id":true}').id is None


def test_a_field_error_names_the_field() -> None:
    assert (
        '"maxRounds"'
        in error_of(b'{"type":"trigger-workflow","workflow":"w","maxRounds":0}').message
    )
    assert '"sense"' in error_of(b'{"type":"trigger-sense"}').message


def test_a_line_over_one_mebibyte_is_refused_as_too_large() -> None:
    line = b'{"type":"health","pad":"' + b"x" * MAX_LINE_BYTES + b'"}'
    assert error_of(line).code is IpcErrorCode.TOO_LARGE


def test_a_response_round_trips_in_camel_case() -> None:
    line = encode_message(TriggerWorkflowResponse(id=3, run_id="r1", status=RunStatus.QUEUED))
    assert orjson.loads(line) == {
        "ok": True,
        "id": 3,
        "runId": "r1",
        "status": "queued",
        "existing": False,
    }
    parsed = parse_daemon_ipc_response(line, TriggerWorkflowResponse)
    assert parsed.ok
    assert parsed.value.run_id == "r1"


def test_an_error_response_parses_on_the_client_side_as_the_error() -> None:
    line = encode_message(error_response(IpcError(IpcErrorCode.UNKNOWN_SENSE, "no sense x", id=9)))
    assert orjson.loads(line) == {
        "ok": False,
        "id": 9,
        "error": {"code": "unknown_sense", "message": "no sense x"},
    }
    parsed = parse_daemon_ipc_response(line, HealthResponse)
    assert not parsed.ok
    assert parsed.error.code == "unknown_sense"


def test_a_health_response_carries_workers() -> None:
    health = HealthResponse(
        pid=1,
        uptime_s=2.5,
        version="0.1.0",
        senses=3,
        workers=[WorkerInfo(kind="sense-group", name="system", pid=7, state="RUNNING")],
    )
    data = orjson.loads(encode_message(health))
    assert data["uptimeS"] == 2.5
    assert data["workers"][0]["pid"] == 7


def test_delayed_triggers_and_timer_requests_parse_with_their_due_time() -> None:
    sense = parse_daemon_ipc_request(b'{"type":"trigger-sense","sense":"s","at":1800000000000}')
    assert sense.ok
    assert isinstance(sense.value, TriggerSenseRequest)
    assert sense.value.at == 1_800_000_000_000
    run = parse_daemon_ipc_request(b'{"type":"trigger-workflow","workflow":"w","at":0}')
    assert run.ok
    assert isinstance(run.value, TriggerWorkflowRequest)
    assert run.value.at == 0
    listed = parse_daemon_ipc_request(b'{"type":"list-timers"}')
    assert listed.ok
    assert isinstance(listed.value, ListTimersRequest)
    cancel = parse_daemon_ipc_request(b'{"type":"cancel-timer","timerId":"d-1-2"}')
    assert cancel.ok
    assert isinstance(cancel.value, CancelTimerRequest)
    assert cancel.value.timer_id == "d-1-2"


@pytest.mark.parametrize(
    "at", ["-1", "253402300800000", "1e3", '"soon"', "true", "99999999999999999999"]
)
def test_a_due_time_out_of_range_or_not_an_integer_is_refused_naming_at(at: str) -> None:
    error = error_of(f'{{"type":"trigger-sense","sense":"s","at":{at}}}')
    assert error.code is IpcErrorCode.BAD_REQUEST
    assert '"at"' in error.message
    assert error_of(b'{"type":"cancel-timer","timerId":""}').code is IpcErrorCode.BAD_REQUEST


def test_every_request_model_is_a_known_type_and_every_known_type_has_a_model() -> None:
    """A request added to the union but not to REQUEST_TYPES would be refused as unknown."""
    from typing import get_args

    from nerve_core._ipc import REQUEST_TYPES, DaemonRequest

    union = get_args(DaemonRequest)[0]
    declared = {model.model_fields["type"].default for model in get_args(union)}
    assert declared == set(REQUEST_TYPES)
