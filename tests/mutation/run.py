"""`make mutate`: break one promise at a time and see whether the tests written for it notice.

Each mutation in `catalogue.py` replaces one snippet of nerve's code (found exactly once) with a
broken version, runs the tests named for it, and puts the code back (always: on a failure, a
timeout or Ctrl+C too). A mutation is *caught* when those tests fail; the table says by which
test, and whether only a timeout (a hang) caught it. The tests are first run unmutated: they
must pass, or the round means nothing.

    .venv/bin/python tests/mutation/run.py [--only WORD] [--list]

Mutations are made in place (the editable install and the workers' fork server load the code
from this checkout), so it refuses to start when a file it mutates has uncommitted changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from catalogue import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parents[2]
PYTEST = [str(ROOT / ".venv/bin/pytest"), "-q", "-x", "-n", "2", "-p", "no:cacheprovider"]
LIMIT_S = 900  # one mutation's tests, in all


def run_tests(tests: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(
            [*PYTEST, *tests], cwd=ROOT, capture_output=True, text=True, timeout=LIMIT_S
        )
    except subprocess.TimeoutExpired:
        return -1, "the tests ran past their limit"
    return done.returncode, done.stdout + done.stderr


def caught_by(output: str) -> str:
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    if not failed:
        return ""
    test = failed[0].split("::")[-1]
    hang = "from pytest-timeout" in output  # a hang, not an assertion
    return f"`{test}`" + (" (only by pytest-timeout: a hang)" if hang else "")


def misplaced(mutation: Mutation) -> str | None:
    """Why `mutation` cannot be made (its snippet moved, a test file gone), or None."""
    if (ROOT / mutation.path).read_text().count(mutation.old) != 1:
        return f"{mutation.name}: the snippet is not in {mutation.path} exactly once"
    missing = [test for test in mutation.tests if not (ROOT / test.split("::")[0]).exists()]
    return f"{mutation.name}: no {', '.join(missing)}" if missing else None


def mutate(mutation: Mutation) -> tuple[bool, str, float]:
    path = ROOT / mutation.path
    original = path.read_text()
    began = time.monotonic()
    try:
        path.write_text(original.replace(mutation.old, mutation.new))
        code, output = run_tests(mutation.tests)
    finally:
        path.write_text(original)
    return code != 0, caught_by(output) if code > 0 else "the run's limit", time.monotonic() - began


def main() -> int:
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    chosen = [m for m in MUTATIONS if only is None or only in m.name]
    if "--list" in sys.argv:
        for mutation in chosen:
            print(f"{mutation.name}: {mutation.path} ({', '.join(mutation.tests)})")
        return 0
    problems = [problem for m in chosen if (problem := misplaced(m)) is not None]
    if problems:  # all of them before any test runs: the code moved since the catalogue
        raise SystemExit("update tests/mutation/catalogue.py:\n" + "\n".join(problems))
    paths = sorted({m.path for m in chosen})
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True, text=True
    ).stdout
    if dirty.strip():
        raise SystemExit(f"commit or stash these first (they are mutated in place):\n{dirty}")
    tests = sorted({test for m in chosen for test in m.tests})
    code, output = run_tests(tests)
    if code != 0:
        raise SystemExit(f"the tests fail unmutated: fix that first\n{output[-3000:]}")
    print("| promise | mutation | tests | caught by |\n|---|---|---|---|", flush=True)
    survivors = []
    for mutation in chosen:
        caught, by, seconds = mutate(mutation)
        if not caught:
            survivors.append(mutation)
        verdict = by if caught else "**survived**"
        tests_shown = ", ".join(f"`{Path(t).name}`" for t in mutation.tests)
        print(
            f"| {mutation.name} | {mutation.what} | {tests_shown} | {verdict} ({seconds:.0f} s) |",
            flush=True,
        )
    durable = [m.name for m in survivors if m.durability]
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} caught; survivors: {len(survivors)}")
    if durable:
        print(f"durability promises that survived: {', '.join(durable)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
