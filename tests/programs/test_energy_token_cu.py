"""bench/cu_energy_token.py measures every energy_token instruction, within budgets (figures: docs/programs/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.chain

# bench/ is a folder of scripts, not a package: load the script by path (independent of the working dir).
_BENCH = Path(__file__).resolve().parents[2] / "bench" / "cu_energy_token.py"
_spec = importlib.util.spec_from_file_location("cu_energy_token", _BENCH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# Headroom over the measured figures: an instruction that becomes markedly dearer should be noticed.
BUDGETS = {
    "initialize": 8_000,
    "settle_and_mint (first reading, mints)": 15_000,
    "settle_and_mint (later reading, mints)": 15_000,
    "settle_and_mint (net below mark, records only)": 15_000,
}


async def test_every_instruction_is_measured_within_budget() -> None:
    cu = await bench.measure()
    assert list(cu) == list(BUDGETS)
    for name, units in cu.items():
        assert 0 < units <= BUDGETS[name], f"{name}: {units} CU over its budget of {BUDGETS[name]}"
    # The aim: a full trustless settle-and-mint within 15k CU; minting is one CPI more.
    assert cu["settle_and_mint (first reading, mints)"] <= bench.TARGET_SETTLE_CU
    assert cu["settle_and_mint (net below mark, records only)"] < cu["settle_and_mint (later reading, mints)"]
    assert bench.table(cu).count("\n") == len(cu) + 1
