"""Plan the fewest contiguous read requests that cover a register table.

Ranges are grouped per function code, sorted, and swept left to right: a range joins the current
request when the unused registers in between are at most ``max_gap`` and the request stays within
``max_registers``.  Both limits only get easier for a sub-run of consecutive ranges, so this greedy
sweep gives the minimum number of requests (exchange argument: the optimal plan's first request can
end no later than ours, and so on by induction).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from gateway.register_map import RegisterMap, RegisterRange

__all__ = ["MODBUS_MAX_REGISTERS", "PlanError", "plan_reads", "plan_table"]

MODBUS_MAX_REGISTERS = 125  # a read response carries at most 250 data bytes


class PlanError(ValueError):
    pass


def plan_reads(
    ranges: Iterable[RegisterRange], *, max_gap: int, max_registers: int = MODBUS_MAX_REGISTERS
) -> list[RegisterRange]:
    """The fewest requests covering every range, ordered by function code then address."""
    if not 1 <= max_registers <= MODBUS_MAX_REGISTERS:
        raise PlanError(f"max_registers must be 1..{MODBUS_MAX_REGISTERS}, got {max_registers}")
    if max_gap < 0:
        raise PlanError(f"max_gap must not be negative, got {max_gap}")
    by_code: dict[int, list[RegisterRange]] = defaultdict(list)
    for r in ranges:
        if r.count < 1 or r.address < 0 or r.end > 0x10000:
            raise PlanError(f"register range {r} is outside 0..65535")
        if r.count > max_registers:
            raise PlanError(f"register range {r} is longer than one request ({max_registers})")
        by_code[r.function_code].append(r)

    plan: list[RegisterRange] = []
    for code in sorted(by_code):
        items = sorted(by_code[code], key=lambda r: (r.address, r.end))
        start, end = items[0].address, items[0].end
        for r in items[1:]:
            new_end = max(end, r.end)
            if r.address - end <= max_gap and new_end - start <= max_registers:
                end = new_end
            else:
                plan.append(RegisterRange(code, start, end - start))
                start, end = r.address, r.end
        plan.append(RegisterRange(code, start, end - start))
    return plan


def plan_table(table: RegisterMap) -> list[RegisterRange]:
    """The requests for one full cycle of ``table`` (absolute addresses, scale factors included)."""
    if table.relative:
        raise PlanError(f"{table.name}: resolve SunSpec offsets before planning reads")
    return plan_reads(table.reads(), max_gap=table.max_gap, max_registers=table.max_registers)
