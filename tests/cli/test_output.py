"""Plain output is written without rich, and says what rich would have printed: the markup
stripped as rich strips it (tags dropped, escaped tags kept, backslashes halved), errors and
warnings as written, and a command's plain output never imports rich at all."""

from __future__ import annotations

import io
import subprocess
import sys

from hypothesis import given, settings, strategies as st
from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape

from nerve_cli.output import strip_markup

# What markup is made of, and what it is not: brackets, slashes, names, `=`, emoji-like codes.
PIECES = st.sampled_from(
    ["[", "]", "\\", "/", "[/]", "[bold]", "[/bold]", "[dim]", "[red on white]", "[link=x]",
    "[#ff0000]", "[@click]", "[1]", "[ ]", "a", "b c", "=", ":warning:", "é", "[[", "]]"]
)  # fmt: skip


def rich_plain(markup: str) -> str:
    out = io.StringIO()
    Console(file=out, no_color=True, highlight=False, soft_wrap=True, emoji=False).print(markup)
    return out.getvalue().removesuffix("\n")


@settings(max_examples=2_000, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_stripped_markup_is_what_rich_prints(markup: str) -> None:
    try:
        expected = rich_plain(markup)
    except MarkupError:
        return  # rich refuses it (a closing tag with nothing open): our messages never are
    assert strip_markup(markup) == expected


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from("ab[]/\\=#@: "), max_size=20))
def test_escaped_text_comes_back_as_it_was(text: str) -> None:
    marked = f"[bold]sense:[/] {escape(text)}"
    assert strip_markup(marked) == rich_plain(marked)
    if "\\" not in text:  # (rich reads `\\[` as `[` even in escaped text, and doubles a final
        assert strip_markup(marked) == f"sense: {text}"  # backslash: it prints two)


def test_a_plain_command_never_imports_rich() -> None:
    probe = (
        "import sys\n"
        "from nerve_cli.output import print_error, print_table, say, warn\n"
        "say('[bold]nerve[/] running: [dim]2 senses[/]')\n"
        "warn('logs.db [1] is damaged')\n"
        "print_table(None, ['a', 'b'], [(1, '[x]')])\n"
        "print_error('no [such] thing')\n"
        "print('rich' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == [
        "nerve running: 2 senses",
        "warning: logs.db [1] is damaged",
        "a  b",
        "1  [x]",
        "False",
    ]
    assert done.stderr == "error: no [such] thing\n"
