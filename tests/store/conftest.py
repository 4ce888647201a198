from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nerve_store import LogStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LogStore]:
    opened = LogStore.open(tmp_path / "data" / "logs.db")
    yield opened
    opened.close()
