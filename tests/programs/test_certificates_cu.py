"""bench/cu_certificates.py measures every certificates instruction, within budgets (figures: docs/programs/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.chain

# bench/ is a folder of scripts, not a package: load the script by path (independent of the working dir).
_BENCH = Path(__file__).resolve().parents[2] / "bench" / "cu_certificates.py"
_spec = importlib.util.spec_from_file_location("cu_certificates", _BENCH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# Headroom over the measured figures: an instruction that becomes markedly dearer should be noticed.
BUDGETS = {
    "initialize": 7_000,
    "issue (first, creates mark)": 10_000,
    "issue (later)": 6_000,
    "validate": 1_500,
    "transfer": 1_500,
    "retire": 1_500,
    "revoke": 1_500,
    "expire": 1_500,
}


async def test_every_instruction_is_measured_within_budget() -> None:
    cu = await bench.measure()
    assert list(cu) == list(BUDGETS)
    for name, units in cu.items():
        assert 0 < units <= BUDGETS[name], f"{name}: {units} CU over its budget of {BUDGETS[name]}"
    # The first issue also creates the meter's mark account.
    assert cu["issue (first, creates mark)"] > cu["issue (later)"]
    assert bench.table(cu).count("\n") == len(cu) + 1
