"""bench/cu_trading.py measures every trading instruction, within the budgets docs/programs/trading.md quotes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.chain

# bench/ is a folder of scripts, not an installed package: load the script by path so that the test does
# not depend on the working directory being on sys.path (plain `pytest` vs `python -m pytest`).
_BENCH = Path(__file__).resolve().parents[2] / "bench" / "cu_trading.py"
_spec = importlib.util.spec_from_file_location("cu_trading", _BENCH)
assert _spec is not None and _spec.loader is not None
cu_trading = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cu_trading)

# Budgets with headroom over the measured figures (see docs/programs/trading.md): a change that makes an
# instruction markedly dearer should be noticed, not slip in.
BUDGETS = {
    "initialize_market": 6_000,
    "create_order": 16_000,
    "buy (partial fill)": 11_000,
    "buy (last fill, closes vault)": 12_000,
    "update_market": 3_000,
    "close_order": 1_000,
    "cancel_order": 8_000,
    "expire_order": 8_000,
}


async def test_every_instruction_is_measured_within_budget() -> None:
    cu = await cu_trading.measure_async()
    assert list(cu) == list(BUDGETS)
    for name, units in cu.items():
        assert 0 < units <= BUDGETS[name], f"{name}: {units} CU over its budget of {BUDGETS[name]}"
    # The last fill also closes the vault: one more CPI than a partial fill.
    assert cu["buy (last fill, closes vault)"] > cu["buy (partial fill)"]
    assert cu_trading.table(cu).count("\n") == len(cu) + 1
