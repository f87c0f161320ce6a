"""RTU polling cost: requests per cycle and measured cycle time versus the RS-485 wire-time limit.

Runs meter-sim on a socat pty pair at 9600 baud with wire-time emulation (a pty has no baud timing, so
the simulator holds each answer for the time request and answer would take on a real line), puts
several SDM630 and SDM120 meters on that one bus, and polls them with the gateway's poller.

The limit for one cycle is what the line itself needs, with zero processing time anywhere::

    sum over requests of (request bytes + response bytes) x 11 bits / baud  +  2 x t3.5 per request

(11 bits per character: start, 8 data, parity or second stop, stop; t3.5 = 3.5 characters of silence
after the request and after the answer).  The ratio measured / limit is the polling overhead.

    python bench/bench_rtu_cycle.py [--cycles N] [--baud B]

Finishes in well under a minute; prints its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from meter_sim.meter import SimMeter
from meter_sim.serial_pair import SerialPair
from meter_sim.server import serve_rtu

from gateway.blocks import plan_table
from gateway.models import get_model
from gateway.poller import MeterSpec, Poller
from gateway.register_map import RegisterRange
from gateway.transport import RtuBus, rtu_inter_frame_gap

BITS_PER_CHAR = 11
METERS = [("sdm630", 1), ("sdm630", 2), ("sdm630", 3), ("sdm120", 4), ("sdm120", 5)]
# mbmd reads an SDM630 one value per request (52 requests for the full set of values).
MBMD_SDM630_REQUESTS = 52


def frame_bytes(request: RegisterRange) -> tuple[int, int]:
    """RTU read request: unit, function, address(2), count(2), CRC(2); answer: unit, function, byte
    count, 2 per register, CRC(2)."""
    return 8, 5 + 2 * request.count


def wire_limit_s(plan: list[RegisterRange], baud: int) -> float:
    chars = sum(sum(frame_bytes(r)) for r in plan)
    return chars * BITS_PER_CHAR / baud + len(plan) * 2 * rtu_inter_frame_gap(baud)


async def bench(cycles: int, baud: int) -> int:
    plans = {model: plan_table(get_model(model).table) for model in {m for m, _ in METERS}}  # type: ignore[arg-type]
    print(f"RTU cycle bench: {len(METERS)} meters on one bus at {baud} baud, wire time emulated, {cycles} cycles")
    print()
    print("requests per cycle (full register table):")
    for model, plan in sorted(plans.items()):
        blocks = ", ".join(f"0x{r.address:04X}+{r.count}" for r in plan)
        print(f"  {model:<7} {len(plan)} requests  [{blocks}]  wire limit {wire_limit_s(plan, baud) * 1000:6.1f} ms")
    sdm630_values = len(get_model("sdm630").table.fields)  # type: ignore[union-attr]
    one_by_one = wire_limit_s([RegisterRange(4, 0, 2)] * MBMD_SDM630_REQUESTS, baud)
    print(f"  (mbmd reads an SDM630 in {MBMD_SDM630_REQUESTS} requests, {one_by_one * 1000:.0f} ms of wire time;"
          f" this table has {sdm630_values} values in {len(plans['sdm630'])} requests)")
    limit = sum(wire_limit_s(plans[model], baud) for model, _ in METERS)

    meters = [SimMeter(model, unit, seed=unit) for model, unit in METERS]
    specs = [MeterSpec(f"{model}-{unit}", get_model(model), unit, "rs485", interval=60, response_timeout=1.0)
             for model, unit in METERS]
    durations: list[float] = []
    per_meter: dict[str, list[float]] = {s.meter_id: [] for s in specs}
    async with SerialPair() as (gateway_end, meter_end):
        async with serve_rtu(meters, meter_end, baud, emulate_wire_time=True):
            bus = RtuBus("rs485", gateway_end, baudrate=baud)
            async with Poller([bus], specs) as poller:
                await poller.poll_once()  # open the port; not counted
                requests_before = bus.requests
                for _ in range(cycles):
                    started = time.perf_counter()
                    results = await poller.poll_once()
                    durations.append(time.perf_counter() - started)
                    failed = [r for r in results if not r.ok]
                    if failed:
                        print(f"poll failed: {failed[0].error}", file=sys.stderr)
                        return 1
                requests = (bus.requests - requests_before) / cycles
                # One meter alone, to show per-model cycle times without queueing behind the others.
                for spec in specs[:1] + specs[-1:]:
                    meter = poller.meter(spec.meter_id)
                    for _ in range(3):
                        started = time.perf_counter()
                        await meter.poll()
                        per_meter[spec.meter_id].append(time.perf_counter() - started)

    measured = statistics.median(durations)
    print()
    print(f"requests per bus cycle: {requests:.0f} (all {len(METERS)} meters)")
    print(f"wire-time limit per bus cycle: {limit * 1000:7.1f} ms")
    print(f"measured bus cycle (median of {cycles}): {measured * 1000:7.1f} ms  "
          f"(min {min(durations) * 1000:.1f}, max {max(durations) * 1000:.1f})")
    print(f"ratio measured / limit: {measured / limit:.3f}  (aim <= 1.3)")
    print(f"FIGURE modbus_requests_per_sdm630_cycle {len(plans['sdm630'])} requests")
    print(f"FIGURE rtu_wire_time_ratio {measured / limit:.3f} x")
    one_gap = limit - requests * rtu_inter_frame_gap(baud)
    print(f"  (counting only one t3.5 per request the limit is {one_gap * 1000:.1f} ms,"
          f" ratio {measured / one_gap:.3f})")
    for meter_id, times in per_meter.items():
        if times:
            model = meter_id.split("-")[0]
            own = wire_limit_s(plans[model], baud)
            print(f"  one {model} alone: {statistics.median(times) * 1000:6.1f} ms vs limit {own * 1000:6.1f} ms"
                  f"  ratio {statistics.median(times) / own:.3f}")
    return 0 if measured / limit <= 1.3 else 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--baud", type=int, default=9600)
    args = parser.parse_args()
    return asyncio.run(asyncio.wait_for(bench(args.cycles, args.baud), timeout=55))


if __name__ == "__main__":
    sys.exit(main())
