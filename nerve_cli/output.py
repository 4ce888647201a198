"""Rendering, in one place: rich for people, plain text when stdout is not a terminal or NO_COLOR
is set, JSON for scripts (`--json`). Plain text is written without rich (whose import is about a
tenth of a short command's time): markup is stripped as rich strips it."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def plain() -> bool:
    return "NO_COLOR" in os.environ or not sys.stdout.isatty()


@cache
def console() -> Console:
    from rich.console import Console

    return Console(no_color=plain(), highlight=False, soft_wrap=True, emoji=False)


@cache
def error_console() -> Console:
    from rich.console import Console

    return Console(
        stderr=True,
        no_color="NO_COLOR" in os.environ or not sys.stderr.isatty(),
        highlight=False,
        soft_wrap=True,
        emoji=False,
    )


def print_json(data: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def say(message: str) -> None:
    """A line for people on stdout (rich markup allowed)."""
    if plain():
        sys.stdout.write(strip_markup(message) + "\n")
    else:
        console().print(message)


def warn(message: str) -> None:
    """A warning for people on stdout, as written (no markup read from it)."""
    if plain():
        sys.stdout.write(f"warning: {message}\n")
    else:
        console().print(f"[bold yellow]warning:[/] {_escape(message)}")


def print_error(message: str) -> None:
    """An error, `error: ` first, on stderr; several lines stay as written."""
    if "NO_COLOR" in os.environ or not sys.stderr.isatty():
        sys.stderr.write(f"error: {message}\n")
    else:
        error_console().print(f"[bold red]error:[/] {_escape(message)}")


# rich's console markup: a tag is `[` then a letter, #, / or @, up to the next `]`; backslashes
# before it escape it when odd in number, and stand for half as many backslashes. Between tags,
# `\[` is a bracket.
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")


def strip_markup(markup: str) -> str:
    """What rich prints of `markup` without styles: its tags dropped, escaped tags as text."""
    if "[" not in markup:
        return markup
    out, position = [], 0
    for match in _TAG.finditer(markup):
        out.append(markup[position : match.start()].replace("\\[", "["))
        slashes = len(match.group(1))
        out.append("\\" * (slashes // 2))
        if slashes % 2:
            out.append(match.group(0)[slashes:])
        position = match.end()
    out.append(markup[position:].replace("\\[", "["))
    return "".join(out)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if plain():
        widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
        lines = [
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [columns, *rows]
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_escape(str(cell)) for cell in row))
    console().print(table)


def format_ts(ms: int | None) -> str:
    """A timestamp (ms since the epoch) as local time, to the second."""
    if ms is None:
        return "-"
    from datetime import datetime

    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_progress(fraction: float, note: str = "") -> str:
    """What a compute or run reported of its progress: `40% copying`."""
    return f"{fraction:.0%} {note}".strip()


def clip(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 sense`, `2 senses`: a count with its noun in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
