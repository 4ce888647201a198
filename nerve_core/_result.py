"""`Result`: the return of every parser in nerve_core.

Parsing never raises for bad input; it returns `ok(value)` or `err(error)`. Read a result as
`.ok`, then `.value` or `.error`. Narrowing on `.ok` is understood by the type checker::

    result = parse_duration("1m30s")
    if result.ok:
        seconds = result.value
    else:
        print(result.error)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeAlias, TypeVar

T = TypeVar("T")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    value: T
    ok: Literal[True] = True


@dataclass(frozen=True, slots=True)
class Err(Generic[E]):
    error: E
    ok: Literal[False] = False


Result: TypeAlias = Ok[T] | Err[E]


def ok(value: T) -> Ok[T]:
    return Ok(value)


def err(error: E) -> Err[E]:
    return Err(error)
