"""bench/cu_trading.py measures every trading instruction, within the budgets docs/programs/trading.md quotes."""

from __future__ import annotations

import pytest

from bench.cu_trading import measure_async, table

pytestmark = pytest.mark.chain

# Budgets with headroom over the measured figures (see docs/programs/trading.md): a change that makes an
# instruction markedly dearer should be noticed, not slip in.
BUDGETS = {
    "initialize_market": 6_000,
    "create_order": 16_000,
    "buy (partial fill)": 11_000,
    "buy (last fill, closes vault)": 12_000,
    "close_order": 1_000,
    "cancel_order": 8_000,
    "expire_order": 8_000,
}


async def test_every_instruction_is_measured_within_budget() -> None:
    cu = await measure_async()
    assert list(cu) == list(BUDGETS)
    for name, units in cu.items():
        assert 0 < units <= BUDGETS[name], f"{name}: {units} CU over its budget of {BUDGETS[name]}"
    # The last fill also closes the vault: one more CPI than a partial fill.
    assert cu["buy (last fill, closes vault)"] > cu["buy (partial fill)"]
    assert table(cu).count("\n") == len(cu) + 1
