"""Bad input of every kind gets a clear answer and loses nothing: fuzzed request lines (parser
and live socket), fuzzed nerve.yaml, senses returning what JSON cannot hold, a module that does
not parse, a workflow naming a role it lacks."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from nerve_core import (
    IpcErrorCode,
    LogType,
    RunStatus,
    parse_daemon_ipc_request,
    parse_nerve_config,
)

from ..cli.conftest import run_nerve
from ..daemon.conftest import running, wait_until
from ..scale import scaled
from ..strategies import json_values
from .conftest import Figure

pytestmark = pytest.mark.slow


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


TYPES = ["trigger-workflow", "trigger-sense", "list-senses", "health", "cancel-workflow", "x"]
NAMES = st.sampled_from(["echo", "tick", "nope", "../../etc", ""]) | json_values

# Request-shaped objects with fields of any JSON type, the declared names among them.
requests = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "id": json_values,
        "workflow": NAMES,
        "sense": NAMES,
        "prompt": json_values,
        "maxRounds": json_values | st.integers(min_value=2**63),
        "runId": json_values,
        "payload": json_values,
    },
)
# Requests with the right fields for their type, of any value: the deeper paths.
text_or_any = st.text(max_size=20) | json_values
shaped = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("trigger-workflow"), "workflow": NAMES},
        optional={"prompt": text_or_any, "maxRounds": json_values, "payload": json_values},
    ),
    st.fixed_dictionaries({"type": st.just("trigger-sense"), "sense": NAMES}),
    st.fixed_dictionaries({"type": st.just("cancel-workflow"), "runId": text_or_any}),
)
nested = st.integers(min_value=1, max_value=20_000).map(lambda n: "[" * n + "]" * n)
huge_numbers = st.sampled_from(["1e999", "-1e999", "9" * 400, "0." + "1" * 5000]).map(
    lambda n: '{"type":"trigger-workflow","workflow":"echo","maxRounds":' + n + "}"
)
# Every kind of line a client could send, as bytes without the newline that ends it.
lines = st.one_of(
    st.binary(max_size=2_000),
    requests.map(json.dumps),
    shaped.map(json.dumps),
    json_values.map(json.dumps),
    nested,
    huge_numbers,
    st.binary(min_size=1, max_size=50).map(lambda b: b'{"type":"health","id":"' + b + b'"}'),
).map(lambda line: (line.encode() if isinstance(line, str) else line).replace(b"\n", b" "))


def test_the_request_parser_answers_every_line_without_raising(figure: Figure) -> None:
    tried = 0

    @fuzz(scaled(250, 2_000))
    @given(lines)
    def check(line: bytes) -> None:
        nonlocal tried
        tried += 1
        parsed = parse_daemon_ipc_request(line)
        assert parsed.ok or (isinstance(parsed.error.code, IpcErrorCode) and parsed.error.message)

    check()
    figure("request lines fuzzed through parse_daemon_ipc_request", f"{tried}, none raised")


def test_the_config_parser_never_raises_and_locates_every_error(figure: Figure) -> None:
    texts, structured, located = 0, 0, 0

    @fuzz(scaled(150, 1_000))
    @given(st.text(max_size=300))
    def any_text(text: str) -> None:
        nonlocal texts
        texts += 1
        parsed = parse_nerve_config(text)
        if not parsed.ok:
            assert all(str(issue).startswith("nerve.yaml") for issue in parsed.error)

    @fuzz(scaled(150, 1_000))
    @given(
        st.fixed_dictionaries(
            {},
            optional={
                "senses": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
                "reflexes": st.lists(json_values, max_size=3),
                "workflows": json_values,
                "groups": json_values,
                "max_rounds": json_values,
                "store": json_values,
            },
        )
    )
    def structured_input(data: dict[str, object]) -> None:
        nonlocal structured, located
        structured += 1
        parsed = parse_nerve_config(yaml.safe_dump(data))
        if not parsed.ok:
            for issue in parsed.error:
                assert issue.line is not None, str(issue)
                located += 1

    any_text()
    structured_input()
    figure(
        "nerve.yaml fuzzed through parse_nerve_config",
        f"{texts} texts + {structured} structured documents, none raised; "
        f"{located}/{located} errors located by line",
    )


def test_the_live_socket_answers_thousands_of_fuzzed_lines_and_lives(
    daemon: Path, figure: Figure
) -> None:
    pid = (daemon / "nerve.pid").read_text().strip()
    sent, refused, accepted = 0, 0, 0
    codes: set[str] = set()

    @fuzz(scaled(40, 150))
    @given(st.lists(lines, min_size=10, max_size=40))
    def check(batch: list[bytes]) -> None:
        nonlocal sent, refused, accepted
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(daemon / "nerve.sock"))
            sock.sendall(b"".join(line + b"\n" for line in batch))
            with sock.makefile("rb") as answers:
                for _ in batch:
                    answer = json.loads(answers.readline())
                    if answer["ok"]:
                        accepted += 1
                    else:
                        refused += 1
                        codes.add(answer["error"]["code"])
                        assert answer["error"]["message"]
        sent += len(batch)

    check()
    assert accepted + refused == sent
    assert "internal" not in codes  # every refusal is the client's error, said as such
    health = run_nerve("status", "--json", cwd=daemon)
    assert health.code == 0
    assert str(json.loads(health.out)["pid"]) == pid  # the same daemon, never restarted
    figure(
        "fuzzed lines on the live socket",
        f"{sent} lines, {sent}/{sent} answered ({accepted} accepted, {refused} refused as "
        f"{', '.join(sorted(codes))}); the same daemon serves on",
    )


BAD_SENSES = {
    "nan": ("def compute(ctx):\n    return {'x': float('nan')}\n", "NaN or infinity"),
    "huge": ("def compute(ctx):\n    return 'x' * 2_000_000\n", "the limit is 1048576"),
    "cycle": ("def compute(ctx):\n    a = []\n    a.append(a)\n    return a\n", "JSON"),
    "raw": ("def compute(ctx):\n    return b'bytes'\n", "not JSON-serialisable"),
    "unparsable": ("def compute(ctx)\n    return 1\n", "SyntaxError"),
}
LOST = """
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "ghost" if thread[-1].role == START else END

definition = WorkflowDefinition(moderator=moderator, roles={"real": lambda ctx: "x"})
"""


@pytest.mark.anyio
async def test_bad_senses_and_a_lost_workflow_are_named_and_the_rest_runs_on(
    ws: Callable[..., Path], figure: Figure
) -> None:
    config = "senses:\n" + "".join(f"  {name}: {{}}\n" for name in [*BAD_SENSES, "fine"])
    config += "reflexes:\n  - sense: fine\n    interval: 100ms\nworkflows:\n  lost: {}\n"
    code = {name: source for name, (source, _) in BAD_SENSES.items()}
    root = ws(
        config, {**code, "fine": "def compute(ctx):\n    return 1\n"}, workflows={"lost": LOST}
    )
    async with running(root) as (kernel, recorder):
        for name in BAD_SENSES:
            kernel.trigger_sense(name)
        run_id, _ = await kernel.trigger_workflow("lost")
        await wait_until(
            lambda: all(
                recorder.of(LogType.COMPUTE_ERROR, name)
                and any(
                    r.payload.get("phase") != "load" for r in recorder.of("compute.error", name)
                )
                for name in BAD_SENSES
            )
        )
        await wait_until(lambda: "failed" in recorder.statuses(run_id))
        before = len(recorder.of(LogType.SIGNAL, "fine"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "fine")) >= before + 3)
        assert [group.state for group in kernel.groups.values()] == ["RUNNING"]
    for name, (_, says) in BAD_SENSES.items():
        errors = [row.payload["error"] for row in recorder.of(LogType.COMPUTE_ERROR, name)]
        assert all(says in error for error in errors), (name, errors)
        assert not recorder.of(LogType.SIGNAL, name)
    [failed] = [
        row
        for row in recorder.of(LogType.WORKFLOW_STATUS, "lost")
        if row.payload["status"] == RunStatus.FAILED
    ]
    assert "ghost" in failed.payload["reason"]
    figure(
        "senses returning NaN, 2 MB, a cycle, bytes; a module that does not parse; "
        "a workflow naming a missing role",
        "each a compute.error or a failed run naming the cause; no signal from them; "
        "their group's worker never died; the healthy sense signalled on",
    )
