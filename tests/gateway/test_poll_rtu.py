"""The poller against simulated meters over Modbus RTU on a socat pty pair, several meters on one bus.

The simulator emulates RS-485 wire time (a pty has none), so bus time here is realistic."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from gwtest_helpers import expected_wh, gaps_s, run_for, spec
from meter_sim.meter import SimMeter
from meter_sim.serial_pair import SerialPair
from meter_sim.server import serve_rtu

from gateway.blocks import plan_table
from gateway.errors import MeterTimeout
from gateway.models import get_model
from gateway.poller import MeterSpec, MeterState, Poller
from gateway.transport import RtuBus, rtu_inter_frame_gap

pytestmark = pytest.mark.timeout(30)


@asynccontextmanager
async def rtu_poller(
    meters: list[SimMeter], specs: list[MeterSpec], baudrate: int
) -> AsyncIterator[tuple[Poller, RtuBus]]:
    async with SerialPair() as (gateway_end, meter_end):
        async with serve_rtu(meters, meter_end, baudrate, emulate_wire_time=True):
            bus = RtuBus("rs485", gateway_end, baudrate=baudrate)
            async with Poller([bus], specs) as poller:
                yield poller, bus


def test_inter_frame_gap() -> None:
    assert rtu_inter_frame_gap(9600) == pytest.approx(3.5 * 11 / 9600)  # 4.01 ms
    assert rtu_inter_frame_gap(19200) == pytest.approx(3.5 * 11 / 19200)
    assert rtu_inter_frame_gap(38400) == 0.00175  # fixed above 19200 baud
    assert RtuBus("b", "/dev/null", baudrate=9600, parity="N", stopbits=1).bits_per_char == 10
    assert RtuBus("b", "/dev/null", baudrate=9600, parity="E").bits_per_char == 11


@pytest.mark.modbus
@pytest.mark.serial
async def test_one_bus_several_meters_one_dead(caplog: pytest.LogCaptureFixture) -> None:
    meters = [SimMeter("sdm630", 1, seed=1), SimMeter("sdm120", 2, seed=2), SimMeter("sunspec", 3, seed=3)]
    interval = 0.5
    specs = [
        spec("three-phase", "sdm630", 1, "rs485", interval=interval, response_timeout=0.3),
        spec("single", "sdm120", 2, "rs485", interval=interval, response_timeout=0.3),
        spec("pv", "sunspec", 3, "rs485", interval=interval, response_timeout=0.3),
        # Nobody answers unit 9 on this bus.
        spec("dead", "sdm630", 9, "rs485", interval=interval, response_timeout=0.3, offline_after=1,
             offline_interval=30),
    ]
    caplog.set_level(logging.INFO, logger="gateway.poller")
    async with rtu_poller(meters, specs, 19200) as (poller, _):
        samples = await run_for(poller, 3.5)
        status = {s.meter_id: s for s in poller.status()}

    for name in ("three-phase", "single", "pv"):
        got = samples[name]
        assert len(got) >= 5, (name, len(got))
        assert all(not s.meter_error for s in got)
        gaps = gaps_s(got)
        # While the dead meter is still tried, a live one waits at most for one of its timeouts (a
        # request already on the wire cannot be taken back) plus the other meters' turns.
        assert max(gaps) < interval + 0.3 + 0.3, (name, gaps)
        # Once it is offline, the live meters keep their interval (after one catch-up slot for a
        # cycle that its last attempt delayed: slots are fixed-rate).
        quiet_since = (status["dead"].last_failure_ms or 0) + 2 * interval * 1000
        settled = gaps_s([s for s in got if s.timestamp_ms > quiet_since])
        assert settled, (name, gaps)
        assert all(abs(g - interval) < 0.12 for g in settled), (name, gaps, settled)
        assert status[name].state is MeterState.ONLINE and status[name].failures == 0
    assert "dead" not in samples
    assert status["dead"].state is MeterState.OFFLINE and status["dead"].failures == 1
    assert status["pv"].sunspec_models == (1, 203)
    assert [r.levelno for r in caplog.records if "dead" in r.getMessage()] == [logging.ERROR]


@pytest.mark.modbus
@pytest.mark.serial
async def test_values_and_faults_over_rtu() -> None:
    meters = [SimMeter("sdm630", 1), SimMeter("sdm120", 2), SimMeter("sunspec", 3), SimMeter("sdm120", 4)]
    for m in meters:
        m.pause()
    meters[3].faults.corrupt = True  # every answer fails its CRC
    specs = [
        spec("a", "sdm630", 1, "rs485", response_timeout=0.5),
        spec("b", "sdm120", 2, "rs485", response_timeout=0.5),
        spec("c", "sunspec", 3, "rs485", response_timeout=0.5),
        spec("noisy", "sdm120", 4, "rs485", response_timeout=0.2, retries=1),
    ]
    async with rtu_poller(meters, specs, 38400) as (poller, bus):
        results = await poller.poll_once()
    for meter, result in zip(meters[:3], results[:3], strict=True):
        assert result.sample is not None, result.error
        truth = meter.truth()
        assert result.sample.import_wh == expected_wh(truth, "import", meter.model)
        assert result.sample.export_wh == expected_wh(truth, "export", meter.model)
        assert result.sample.power_w == round(truth["power_w"])
    noisy = results[3]
    assert isinstance(noisy.error, MeterTimeout)  # a frame with a bad CRC is no answer
    assert "bus rs485 unit 4 register 64512" in str(noisy.error)  # the Eastron identity block, asked first
    # (identity + 3) + (identity + 2) + (marker, 3 headers, common model, data) + 2 attempts for the noisy one
    assert bus.requests == 4 + 3 + 6 + 2


@pytest.mark.modbus
@pytest.mark.serial
async def test_sdm630_cycle_is_close_to_wire_time_at_9600_baud() -> None:
    meter = SimMeter("sdm630", 1)
    s = spec("m", "sdm630", 1, "rs485", response_timeout=1.0)
    table = get_model("sdm630").table
    assert table is not None
    plan = plan_table(table)
    chars = sum(8 + 5 + 2 * r.count for r in plan)  # request 8 bytes; answer 5 + 2 per register
    limit = chars * 11 / 9600 + len(plan) * 2 * rtu_inter_frame_gap(9600)
    async with rtu_poller([meter], [s], 9600) as (poller, _):
        await poller.poll_once()  # connect, warm up
        started = time.monotonic()
        for _ in range(3):
            (result,) = await poller.poll_once()
            assert result.ok
        cycle = (time.monotonic() - started) / 3
    assert limit == pytest.approx(0.339, abs=0.002)
    assert cycle >= limit * 0.95  # the simulator really holds the line for the wire time
    assert cycle < limit * 1.6, (cycle, limit)  # bench/bench_rtu_cycle.py measures this precisely
