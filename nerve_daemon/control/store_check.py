"""logs.db's pages are checked once after each start, off the event loop: a page damaged inside
an otherwise readable file (a flipped bit, a bad sector) goes unnoticed by SQLite until a query
reads it. Found, it is said in the daemon's log, in `health` (`storeDamage`) and `nerve status`,
and in a `store.damaged` row (`@store.damaged` to a reflex), with how to repair it; nerve writes
on meanwhile, and a query that meets a damaged page fails alone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anyio

from nerve_core import LogType
from nerve_store import KERNEL_SOURCE, LogRow, quick_check

log = logging.getLogger("nerve")

_ROW_PROBLEMS = 10  # problems kept in the row (quick_check stops at 100)


class StoreCheck:
    def __init__(self, path: Path, record: Callable[[LogRow], None]) -> None:
        self.path = path
        self.record = record
        self.damage: str | None = None  # what is wrong and what to do, once found

    async def run(self) -> None:
        try:
            problems = await anyio.to_thread.run_sync(
                quick_check, self.path, abandon_on_cancel=True
            )
        except Exception as exc:  # an I/O error, say: the writer reports those as it meets them
            log.warning("logs.db could not be checked: %s", exc)
            return
        if not problems:
            return
        self.damage = describe(self.path, problems)
        log.warning("%s", self.damage)
        payload = {"problems": problems[:_ROW_PROBLEMS], "count": len(problems)}
        self.record(LogRow(KERNEL_SOURCE, LogType.STORE_DAMAGED, payload))


def describe(path: Path, problems: list[str]) -> str:
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    return (
        f"logs.db ({path}) is damaged: {problems[0]}{more}; nerve writes on, and a read that "
        "meets a damaged page fails. To repair: nerve stop; nerve store recover; nerve start"
    )
