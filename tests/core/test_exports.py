from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nerve_core
from nerve_core import parse_size


def test_every_lazy_export_resolves_and_matches_what_type_checkers_see() -> None:
    for name in nerve_core.__all__:
        assert getattr(nerve_core, name) is not None, name
    tree = ast.parse(Path(nerve_core.__file__).read_text())
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        for statement in node.body
        if isinstance(statement, ast.ImportFrom)
        for alias in statement.names
    }
    assert typed == set(nerve_core.__all__)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256MB", 256_000_000),
        ("1GiB", 1 << 30),
        ("1.5 KiB", 1536),
        ("4096", 4096),
        (512, 512),
        ("2kb", 2000),
    ],
)
def test_sizes_parse_to_bytes(text: object, size: int) -> None:
    parsed = parse_size(text)
    assert parsed.ok
    assert parsed.value == size


@pytest.mark.parametrize("text", ["lots", "", "0MB", "-5MB", "5 parsecs", True, 0, None, 1.5])
def test_invalid_sizes_say_why(text: object) -> None:
    parsed = parse_size(text)
    assert not parsed.ok
    assert "invalid size" in parsed.error
