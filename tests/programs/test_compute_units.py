"""bench/bench_compute_units.py measures every instruction of every program, within budgets.

The budgets leave headroom over the figures in docs/programs.md ("Compute units"): an instruction that
becomes markedly dearer should be noticed, not slip in. One run of the bench serves every assertion.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.chain


def _load_bench() -> ModuleType:
    # bench/ is a folder of scripts, not a package: load by path (independent of the working directory).
    path = Path(__file__).resolve().parents[2] / "bench" / "bench_compute_units.py"
    spec = importlib.util.spec_from_file_location("bench_compute_units", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass needs to find its module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

BUDGETS = {
    "registry": {
        "initialize": 8_000,
        "register_user": 5_000,
        "register_meter": 6_000,
        "set_meter_status": 2_000,
        "record_settlement (direct, baseline)": 2_000,
        "set_meter_key": 2_000,
        "reassign_meter": 3_000,
    },
    "energy_token": {
        "initialize": 8_000,
        "settle_and_mint (first reading: baseline, records only)": 15_000,
        "settle_and_mint (later reading, mints)": 15_000,
        "settle_and_mint (net below mark, records only)": 15_000,
        "settle_and_mint (mints; meter's canonical bump 255 - 3)": 15_000,
        "consume": 4_000,
    },
    "certificates": {
        "initialize": 7_000,
        "issue (first, creates mark)": 10_000,
        "issue (later)": 6_000,
        "validate": 2_000,
        "transfer": 2_000,
        "retire": 2_000,
        "revoke": 2_000,
        "expire": 2_000,
    },
    "trading": {
        "initialize_market": 6_000,
        "create_order": 12_000,
        "buy (partial fill)": 11_000,
        "buy (last fill, closes vault)": 12_000,
        "update_market": 2_000,
        "close_order": 1_000,
        "cancel_order": 8_000,
        "expire_order": 8_000,
    },
    "payments": {
        "initialize": 12_000,  # includes the ProgramData address search, which depends on the program id
        "issue": 8_000,
        "redeem": 4_000,
        "set_operator": 1_500,
    },
}


@pytest.fixture(scope="module")
def rows() -> list[Any]:
    # Synchronous on purpose: one measurement for the whole module, outside any test's event loop.
    measured: list[Any] = asyncio.run(bench.measure_all())
    return measured


@pytest.fixture
def cu(rows: list[Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r.program, {})[r.instruction] = r.compute_units
    return out


@pytest.mark.parametrize("program", list(BUDGETS))
def test_every_instruction_is_measured_within_budget(cu: dict[str, dict[str, int]], program: str) -> None:
    assert list(cu[program]) == list(BUDGETS[program])
    for name, units in cu[program].items():
        budget = BUDGETS[program][name]
        assert 0 < units <= budget, f"{program} {name}: {units} CU over its budget of {budget}"


def test_settle_and_mint_meets_the_15k_aim(rows: list[Any], cu: dict[str, dict[str, int]]) -> None:
    energy = cu["energy_token"]
    assert energy["settle_and_mint (later reading, mints)"] <= bench.SETTLE_AND_MINT_TARGET
    assert bench.settle_and_mint_over_target(rows) == []
    # Minting is one CPI more than only recording the settlement (the baseline records only too).
    assert energy["settle_and_mint (net below mark, records only)"] < energy["settle_and_mint (later reading, mints)"]
    assert energy["settle_and_mint (first reading: baseline, records only)"] < energy[
        "settle_and_mint (later reading, mints)"]


def test_extra_work_costs_more(cu: dict[str, dict[str, int]]) -> None:
    # The first issue also creates the meter's mark account; the last fill also closes the vault.
    assert cu["certificates"]["issue (first, creates mark)"] > cu["certificates"]["issue (later)"]
    assert cu["trading"]["buy (last fill, closes vault)"] > cu["trading"]["buy (partial fill)"]


def test_table_has_a_row_per_measurement(rows: list[Any]) -> None:
    assert bench.table(rows).count("\n") == len(rows) + 1
    assert len(rows) == sum(len(b) for b in BUDGETS.values())


def test_check_flag_fails_only_over_target() -> None:
    over = bench.Measurement("energy_token", "settle_and_mint (x)", bench.SETTLE_AND_MINT_TARGET + 1)
    fine = bench.Measurement("trading", "create_order", bench.SETTLE_AND_MINT_TARGET + 1)
    assert bench.settle_and_mint_over_target([over, fine]) == [over]


def test_the_canonical_meter_check_costs_about_340_cu_per_bump_above_it(cu: dict[str, dict[str, int]]) -> None:
    # The energy token checks that no bump above the meter's is valid: one sha256 + one curve check each.
    energy = cu["energy_token"]
    extra = (energy["settle_and_mint (mints; meter's canonical bump 255 - 3)"]
             - energy["settle_and_mint (later reading, mints)"])
    assert 3 * 300 <= extra <= 3 * 400, extra
