"""How hard the fault-injection and soak tests push. `make test` runs each of them short, with
the same assertions; `make faults` and `make soak` run them at full counts (NERVE_FULL=1)."""

from __future__ import annotations

import os

FULL = os.environ.get("NERVE_FULL") == "1"


def scaled(short: int, full: int) -> int:
    return full if FULL else short
