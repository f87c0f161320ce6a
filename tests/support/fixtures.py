"""pytest fixtures over :mod:`tests.support`; import the ones a test module uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.postgres import temp_database


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database() as url:
        yield url
