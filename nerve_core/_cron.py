"""Cron expressions and time zones as nerve.yaml writes them, checked where the config is read.

An expression has the standard five fields (`0 9 * * mon-fri`) or is one of the usual names
(`@hourly`, `@daily`, …), which stand for their five-field forms. cronsim (the `cron` extra)
parses and iterates it, with the DST rule of Debian's cron: a time inside a skipped hour fires
once, at the end of the gap; a time inside a repeated hour fires once, the first time.
A time zone is an IANA name (`Europe/Paris`); without one, a cron reflex follows the machine's own
zone (`TZ`, else /etc/localtime), as cron does.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._result import Result, err, ok

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_CRON_LENGTH = 200


def cron_fields(expression: str) -> str:
    """The five-field form of `expression` (a nickname expanded, spaces normalised)."""
    text = " ".join(expression.split())
    return NICKNAMES.get(text.lower(), text)


def check_cron(value: object) -> Result[str, str]:
    """`value` as a cron expression cronsim accepts, or why it is not one."""
    if not isinstance(value, str) or not value.strip():
        return err(f'invalid cron expression {value!r}: expected five fields, e.g. "0 9 * * *"')
    if len(value) > MAX_CRON_LENGTH:
        return err(f"invalid cron expression: longer than {MAX_CRON_LENGTH} characters")
    fields = cron_fields(value)
    if fields.startswith("@"):
        known = ", ".join(NICKNAMES)
        return err(f'invalid cron expression "{value}": unknown name (known: {known})')
    if len(fields.split()) != 5:
        return err(
            f'invalid cron expression "{value}": expected five fields (minute hour day month '
            f"weekday), got {len(fields.split())}"
        )
    cronsim = _cronsim()
    if cronsim is None:
        return err('cron needs the "cron" extra: pip install "nerve[cron]"')
    try:
        cronsim.CronSim(fields, datetime.now(UTC))
    except cronsim.CronSimError as exc:
        return err(f'invalid cron expression "{value}": {exc}')
    return ok(" ".join(value.split()))


def check_timezone(value: object) -> Result[str, str]:
    if not isinstance(value, str) or not value or len(value) > 64:
        return err(f"invalid time zone {value!r}: expected an IANA name, e.g. Europe/Paris")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return err(f'unknown time zone "{value}": expected an IANA name, e.g. Europe/Paris')
    return ok(value)


def zone(name: str | None) -> tzinfo:
    """The zone called `name`, or the machine's own when None."""
    if name is not None:
        return ZoneInfo(name)
    local = os.environ.get("TZ", "").lstrip(":")
    if local:
        try:
            return ZoneInfo(local)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as data:
            return ZoneInfo.from_file(data, key="localtime")
    except (OSError, ValueError):
        return UTC


def _cronsim() -> Any:
    try:
        import cronsim
    except ImportError:
        return None
    return cronsim
