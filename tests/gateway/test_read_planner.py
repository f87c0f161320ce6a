"""The read planner: fewest requests, limits respected, every register covered."""

from __future__ import annotations

import itertools
import random

import pytest

from gateway.blocks import PlanError, plan_reads, plan_table
from gateway.models import MODELS
from gateway.models.sunspec import FLOAT_METER, INT_METER
from gateway.register_map import READ_HOLDING, READ_INPUT, RegisterRange


def covered(plan: list[RegisterRange]) -> set[tuple[int, int]]:
    return {(r.function_code, a) for r in plan for a in range(r.address, r.end)}


def needed(ranges: list[RegisterRange]) -> set[tuple[int, int]]:
    return covered(ranges)


def test_sdm630_full_table_in_three_requests() -> None:
    plan = plan_table(MODELS["sdm630"].table)  # type: ignore[arg-type]
    assert len(plan) <= 3
    assert [(r.address, r.count) for r in plan] == [(0x0000, 80), (0x00EA, 16), (0x0156, 22)]
    assert all(r.count <= 80 for r in plan)  # the SDM630 refuses more than 40 values per request
    assert needed(MODELS["sdm630"].table.reads()) <= covered(plan)  # type: ignore[union-attr]


def test_sdm120_full_table_in_two_requests() -> None:
    plan = plan_table(MODELS["sdm120"].table)  # type: ignore[arg-type]
    assert [(r.function_code, r.address, r.count) for r in plan] == [(4, 0, 80), (4, 0x156, 4)]


@pytest.mark.parametrize("table", [INT_METER, FLOAT_METER])
def test_sunspec_meter_model_in_one_request(table) -> None:  # type: ignore[no-untyped-def]
    resolved = table.resolve(40070)
    plan = plan_table(resolved)
    assert len(plan) == 1
    assert plan[0].function_code == READ_HOLDING
    assert plan[0].address == 40072  # first data register after [id, length]
    assert needed(resolved.reads()) <= covered(plan)


def test_relative_table_must_be_resolved_first() -> None:
    with pytest.raises(PlanError, match="resolve"):
        plan_table(INT_METER)


def test_gap_limit_splits_and_merges() -> None:
    ranges = [RegisterRange(4, 0, 2), RegisterRange(4, 10, 2)]
    assert plan_reads(ranges, max_gap=8) == [RegisterRange(4, 0, 12)]
    assert plan_reads(ranges, max_gap=7) == [RegisterRange(4, 0, 2), RegisterRange(4, 10, 2)]


def test_max_registers_limit() -> None:
    ranges = [RegisterRange(4, a, 2) for a in range(0, 300, 2)]
    plan = plan_reads(ranges, max_gap=0)
    assert [r.count for r in plan] == [124, 124, 52]  # 2-register values never split across requests
    assert covered(plan) == needed(ranges)
    assert all(r.count <= 125 for r in plan)


def test_function_codes_never_share_a_request() -> None:
    ranges = [RegisterRange(READ_INPUT, 0, 2), RegisterRange(READ_HOLDING, 2, 2)]
    plan = plan_reads(ranges, max_gap=100)
    assert sorted((r.function_code, r.address, r.count) for r in plan) == [(3, 2, 2), (4, 0, 2)]


def test_overlapping_and_duplicate_ranges() -> None:
    ranges = [RegisterRange(3, 5, 2), RegisterRange(3, 5, 1), RegisterRange(3, 6, 2), RegisterRange(3, 5, 2)]
    assert plan_reads(ranges, max_gap=0) == [RegisterRange(3, 5, 3)]


@pytest.mark.parametrize(
    ("ranges", "kwargs"),
    [
        ([RegisterRange(4, 0, 126)], {"max_gap": 0}),
        ([RegisterRange(4, 0, 10)], {"max_gap": 0, "max_registers": 8}),
        ([RegisterRange(4, 65535, 2)], {"max_gap": 0}),
        ([RegisterRange(4, 0, 2)], {"max_gap": -1}),
        ([RegisterRange(4, 0, 2)], {"max_gap": 0, "max_registers": 126}),
    ],
)
def test_bad_input_is_refused(ranges, kwargs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlanError):
        plan_reads(ranges, **kwargs)


def _optimal_count(ranges: list[RegisterRange], max_gap: int, max_registers: int) -> int:
    """Brute force over every way to cut the sorted list into consecutive groups."""
    items = sorted(ranges, key=lambda r: (r.address, r.end))
    best = len(items)
    for cuts in itertools.product([False, True], repeat=len(items) - 1):
        groups, current = [], [items[0]]
        for cut, r in zip(cuts, items[1:], strict=True):
            if cut:
                groups.append(current)
                current = [r]
            else:
                current.append(r)
        groups.append(current)
        ok = True
        for g in groups:
            start, end = g[0].address, g[0].end
            for r in g[1:]:
                if r.address - end > max_gap:
                    ok = False
                end = max(end, r.end)
            if end - start > max_registers:
                ok = False
        if ok:
            best = min(best, len(groups))
    return best


def test_greedy_plan_is_minimal_on_random_tables() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        ranges = [RegisterRange(4, rng.randrange(0, 120), rng.choice([1, 2, 2, 4])) for _ in range(rng.randrange(1, 9))]
        max_gap, max_registers = rng.randrange(0, 12), rng.randrange(4, 40)
        plan = plan_reads(ranges, max_gap=max_gap, max_registers=max_registers)
        assert needed(ranges) <= covered(plan)
        assert all(r.count <= max_registers for r in plan)
        assert len(plan) == _optimal_count(ranges, max_gap, max_registers)
