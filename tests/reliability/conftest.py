"""The reliability suite: each test states what it tried and what held, as figures printed in
the summary at the end of the run (see `tests/conftest.py`) and stated in RELIABILITY.md."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import pytest

from ..conftest import FIGURE
from ..daemon.conftest import ws  # noqa: F401  (the workspace fixture, shared)

Figure = Callable[[str, str], None]


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figure:
    """Record one figure of this test: what was measured or tried, and what held."""

    def record(what: str, value: str) -> None:
        request.node.user_properties.append((FIGURE, {"what": what, "value": value}))

    return record


def ms(seconds: Sequence[float]) -> str:
    """Median and p99 (the largest of fewer than 100) of `seconds`, in milliseconds."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
