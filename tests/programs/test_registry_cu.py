"""bench/cu_registry.py measures every registry instruction, within budgets (figures: docs/programs/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.chain

# bench/ is a folder of scripts, not a package: load the script by path (independent of the working dir).
_BENCH = Path(__file__).resolve().parents[2] / "bench" / "cu_registry.py"
_spec = importlib.util.spec_from_file_location("cu_registry", _BENCH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# Headroom over the measured figures: an instruction that becomes markedly dearer should be noticed.
BUDGETS = {
    "initialize": 8_000,
    "register_user": 5_000,
    "register_meter": 6_000,
    "set_meter_status": 1_500,
    "record_settlement (direct)": 1_000,
    "set_meter_key": 1_500,
    "reassign_meter": 2_000,
}


async def test_every_instruction_is_measured_within_budget() -> None:
    cu = await bench.measure()
    assert list(cu) == list(BUDGETS)
    for name, units in cu.items():
        assert 0 < units <= BUDGETS[name], f"{name}: {units} CU over its budget of {BUDGETS[name]}"

    assert bench.table(cu).count("\n") == len(cu) + 1
