"""Loaded by every Python process of a test that moves the wall clock with libfaketime while
leaving the monotonic clock alone (FAKETIME_DONT_FAKE_MONOTONIC): Debian 12's libfaketime 0.9.10
turns Python 3.11's `time.sleep`, an absolute `clock_nanosleep` on the monotonic clock, into
EINVAL (libfaketime issue #426). The same sleep, relative, through `select`, which it passes
through as it is."""

import select
import time


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
