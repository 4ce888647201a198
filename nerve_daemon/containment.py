"""Containment: an error nobody expected, in one request, one compute's outcome or one run, is
logged with its traceback and goes no further. Every part of the kernel runs in one task group,
so an exception that escaped any of them would stop nerve; these are the walls that keep a bad
input from doing that. Cancellation is not an `Exception` and passes through untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger("nerve")


@contextlib.contextmanager
def contained(what: str) -> Iterator[None]:
    """Run the block; an `Exception` from it is logged as `what` failing, and swallowed."""
    try:
        yield
    except Exception:
        log.exception("%s failed unexpectedly; nerve goes on", what)
