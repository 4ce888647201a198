"""Pydantic field types shared by the config models and the IPC messages: durations and names,
validated with nerve's own parsers so the messages match everywhere."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PlainValidator, StrictInt
from pydantic_core import PydanticCustomError

from ._durations import parse_duration
from ._sizes import parse_size
from ._workspace import check_name


def _duration(value: object) -> float:
    parsed = parse_duration(value)
    if not parsed.ok:
        raise _error("duration", parsed.error)
    return parsed.value


def _positive_duration(value: object) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise _error("duration", f"duration must be greater than 0, got {value!r}")
    return seconds


def _optional_positive_duration(value: object) -> float | None:
    return None if value is None else _positive_duration(value)


def _signal_source(value: object) -> str:
    """A reflex's `on` entry: a sense's name, or one of the kernel's own signals ("@…")."""
    from ._events import KERNEL_SIGNALS

    if isinstance(value, str) and value.startswith("@"):
        if value not in KERNEL_SIGNALS:
            known = ", ".join(KERNEL_SIGNALS)
            raise _error("name", f'unknown kernel signal "{value[:64]}" (known: {known})')
        return value
    return _name(value)


def _cron(value: object) -> str | None:
    from ._cron import check_cron

    if value is None:
        return None
    checked = check_cron(value)
    if not checked.ok:
        raise _error("cron", checked.error)
    return checked.value


def _timezone(value: object) -> str | None:
    from ._cron import check_timezone

    if value is None:
        return None
    checked = check_timezone(value)
    if not checked.ok:
        raise _error("timezone", checked.error)
    return checked.value


def _name(value: object) -> str:
    checked = check_name(value)
    if not checked.ok:
        raise _error("name", checked.error)
    return checked.value


# Bounds on every number that crosses into nerve (nerve.yaml, the socket, a sense's directive),
# so each fits the 64-bit integers of SQLite and the protocol, and a typo cannot ask for the
# impossible.
MAX_ROUNDS = 1_000_000  # role turns of one run
MAX_CONCURRENCY = 10_000  # runs of one workflow at once
MAX_QUEUE = 1_000_000  # queued runs of one workflow
MAX_ATTEMPTS = 100  # tries of one compute or role (`retry.attempts`)
MAX_REQUEST_ID = 2**63 - 1  # a client's request id, echoed back

Rounds = Annotated[StrictInt, Field(ge=1, le=MAX_ROUNDS)]
Duration = Annotated[float, PlainValidator(_duration)]
PositiveDuration = Annotated[float, PlainValidator(_positive_duration)]
OptionalPositiveDuration = Annotated[float | None, PlainValidator(_optional_positive_duration)]
Name = Annotated[str, PlainValidator(_name)]
SignalSource = Annotated[str, PlainValidator(_signal_source)]
OptionalCron = Annotated[str | None, PlainValidator(_cron)]
OptionalTimezone = Annotated[str | None, PlainValidator(_timezone)]


def _optional_size(value: object) -> int | None:
    if value is None:
        return None
    parsed = parse_size(value)
    if not parsed.ok:
        raise _error("size", parsed.error)
    return parsed.value


OptionalSize = Annotated[int | None, PlainValidator(_optional_size)]


def _error(kind: str, message: str) -> PydanticCustomError:
    # The message goes in as context: user text may hold braces the template would expand.
    return PydanticCustomError(kind, "{message}", {"message": message})
