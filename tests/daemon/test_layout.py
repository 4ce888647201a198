"""The house: nerve_daemon's rooms depend downward only (kernel → control → senses, workflows →
supervise), and no module imports another in a circle. An import that breaks this fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import nerve_daemon

PACKAGE = Path(nerve_daemon.__file__).parent
# Higher ranks may import lower ones; equal ranks only within one room. Leaf helpers at the top
# of the package (containment, lifetimes) rank lowest: every room may use them.
RANK = {
    "containment": 0,
    "lifetimes": 0,
    "supervise": 1,
    "timing": 1,
    "senses": 2,
    "workflows": 2,
    "control": 3,
    "options": 4,
    "state": 4,
    "explain": 5,
    "kernel": 6,
    "service": 7,
    "daemon_main": 8,
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(("nerve_daemon", *parts))] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {target for target in found if target.startswith("nerve_daemon.")}


def room(name: str) -> str:
    return name.split(".")[1]


def test_rooms_depend_downward_only() -> None:
    upward = []
    for name, path in modules().items():
        if name == "nerve_daemon":
            continue
        for target in imports(name, path):
            here, there = room(name), room(target)
            if here != there and RANK[there] >= RANK[here]:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_no_module_imports_another_in_a_circle() -> None:
    graph = {name: imports(name, path) for name, path in modules().items()}
    cycles = []

    def visit(name: str, stack: list[str]) -> None:
        for target in graph.get(name, ()):
            if target in stack:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in done:
                visit(target, [*stack, target])
        done.add(name)

    done: set[str] = set()
    for name in graph:
        visit(name, [name])
    assert cycles == []
