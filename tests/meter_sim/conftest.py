"""Fixtures for the simulator's tests."""

from __future__ import annotations

import pytest
from simtest_helpers import ManualClock


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()
