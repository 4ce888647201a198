from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from nerve_core import NAME_PATTERN, Workspace, check_name
from nerve_core.errors import InvalidNameError


def test_paths_follow_the_workspace_layout() -> None:
    ws = Workspace(Path("/w"))
    assert ws.config_path == Path("/w/nerve.yaml")
    assert ws.sense_module("cpu-usage") == Path("/w/senses/cpu-usage/compute.py")
    assert ws.sense_migrations_dir("cpu-usage") == Path("/w/senses/cpu-usage/migrations")
    assert ws.workflow_module("cleanup") == Path("/w/workflows/cleanup/workflow.py")
    assert ws.sense_db("cpu-usage") == Path("/w/data/senses/cpu-usage.db")
    assert ws.logs_db == Path("/w/data/logs.db")
    assert ws.blobs_dir == Path("/w/data/blobs")
    assert ws.archive_dir == Path("/w/data/archive/logs")
    assert ws.log_file == Path("/w/logs/nerve.log")
    assert ws.socket_path == Path("/w/nerve.sock")
    assert ws.pid_path == Path("/w/nerve.pid")


@pytest.mark.parametrize(
    "name", ["..", "../x", "a/b", "/abs", "A", "", "-a", "_a", "a" * 65, "a.b", "a b"]
)
def test_a_name_that_could_leave_the_workspace_is_refused_before_any_path_is_built(
    name: str,
) -> None:
    ws = Workspace(Path("/w"))
    with pytest.raises(InvalidNameError):
        ws.sense_db(name)
    with pytest.raises(InvalidNameError):
        ws.workflow_module(name)


@given(st.text(max_size=70))
def test_every_accepted_name_stays_one_path_component(name: str) -> None:
    if check_name(name).ok:
        assert NAME_PATTERN.fullmatch(name)
        path = Workspace(Path("/w")).sense_db(name)
        assert path.parent == Path("/w/data/senses")
