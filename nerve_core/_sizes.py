"""Byte sizes as nerve.yaml writes them: `512KB`, `256MB`, `1.5GB`, `64MiB`, or a bare number of
bytes. KB/MB/GB are powers of 1000, KiB/MiB/GiB powers of 1024."""

from __future__ import annotations

import re

from ._result import Result, err, ok

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)")


def parse_size(value: object) -> Result[int, str]:
    """Bytes for `value`, or a message saying why it is not a size."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return err(f"invalid size {value!r}: expected e.g. 256MB, 1GiB or a number of bytes")
    if isinstance(value, int):
        return ok(value) if value > 0 else err(f"invalid size {value}: must be greater than 0")
    match = _SIZE.fullmatch(value.strip())
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        return err(f'invalid size "{value}": expected e.g. 256MB, 1GiB or a number of bytes')
    size = round(float(match.group(1)) * _UNITS[unit])
    return ok(size) if size > 0 else err(f'invalid size "{value}": must be greater than 0')
