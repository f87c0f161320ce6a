"""The poller against simulated meters over real Modbus TCP (meter_sim's server on a free port)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from gwtest_helpers import expected_wh, gaps_s, run_for, spec
from meter_sim.meter import SimMeter
from meter_sim.server import serve_tcp

from gateway.blocks import plan_table
from gateway.decode import RegisterImage, decode_table, to_wh
from gateway.errors import BusUnavailable, MeterExceptionResponse, MeterTimeout
from gateway.measurements import Measurement as M
from gateway.models.sunspec import FLOAT_METER
from gateway.poller import MeterSpec, MeterState, Poller
from gateway.register_map import RegisterRange
from gateway.sample import MeterSample
from gateway.sunspec_discovery import discover
from gateway.transport import TcpBus

pytestmark = [pytest.mark.modbus, pytest.mark.timeout(30)]


@asynccontextmanager
async def tcp_poller(
    meters: list[SimMeter], specs: list[MeterSpec], *, separate: bool = False
) -> AsyncIterator[tuple[Poller, TcpBus]]:
    """One endpoint; by default one ``tcp`` bus (one shared connection) for every meter, with
    ``separate`` a bus per meter (as separate devices are configured: the spec's bus name is used)."""
    async with serve_tcp(meters) as server:
        names = sorted({s.bus for s in specs}) if separate else ["lan"]
        buses = [TcpBus(name, "127.0.0.1", server.port, connect_timeout=2.0) for name in names]
        async with Poller(buses, specs) as poller:
            yield poller, buses[0]


async def test_readings_match_what_the_meters_hold() -> None:
    meters = [
        SimMeter("sdm630", 1, seed=1),
        SimMeter("sdm120", 2, seed=2),
        SimMeter("sunspec", 3, seed=3),
        SimMeter("sunspec", 4, seed=4, sunspec_energy_sf=1),  # counters in units of 10 Wh
    ]
    for m in meters:
        m.pause()  # registers hold still between the read and the comparison
    specs = [spec(f"m{m.unit}", m.model, m.unit, "lan", response_timeout=1.0) for m in meters]
    async with tcp_poller(meters, specs) as (poller, bus):
        results = await poller.poll_once()
        for meter, result in zip(meters, results, strict=True):
            assert result.ok, result.error
            sample = result.sample
            assert sample is not None and not sample.meter_error, sample
            truth = meter.truth()
            assert sample.import_wh == expected_wh(truth, "import", meter.model)
            assert sample.export_wh == expected_wh(truth, "export", meter.model)
            assert sample.power_w == round(truth["power_w"])
            assert sample.values["import_energy"] == pytest.approx(truth["import_wh_exact"], abs=10)
        assert results[3].sample is not None and results[3].sample.import_wh % 10 == 0
        status = {s.meter_id: s for s in poller.status()}
        assert {k: s.requests_per_cycle for k, s in status.items()} == {"m1": 3, "m2": 2, "m3": 1, "m4": 1}
        assert status["m3"].sunspec_models == (1, 203)
        assert status["m1"].identity is not None and status["m1"].identity.name == "Eastron SDM630-Modbus"
        assert status["m2"].identity is not None and status["m2"].identity.model == "sdm120"
        assert status["m3"].identity is not None and status["m3"].identity.serial == "GTX-SIM-003"
        # identity + 3, identity + 2, (marker + 3 model headers + common model + 1 data read) x 2 SunSpec
        assert bus.requests == 4 + 3 + 2 * 6
        requests_before = bus.requests
        await poller.poll_once()
        assert bus.requests - requests_before == 3 + 2 + 1 + 1  # discovery is done once


async def test_sunspec_discovery_walks_the_model_chain() -> None:
    meter = SimMeter("sunspec", 7, sunspec_float=True)
    meter.pause()
    async with serve_tcp([meter]) as server:
        async with TcpBus("lan", "127.0.0.1", server.port) as bus:

            async def read(request: RegisterRange) -> list[int]:
                return await bus.read(7, request, response_timeout=1.0)

            device = await discover(read, bus="lan", unit=7)
            assert device.base == 40000
            assert device.model_ids == (1, 203, 213)
            assert device.meter.model_id == 203 and device.meter.address == 40070  # the worked example
            assert device.table[M.IMPORT_ENERGY].address == 40116

            # The float model 213 that follows 203 (40070 + 2 + 105), decoded through the same path.
            device = await discover(read, bus="lan", unit=7, tables={213: FLOAT_METER})
            assert device.meter.model_id == 213 and device.meter.address == 40177
            image = RegisterImage()
            for request in plan_table(device.table):
                image.add(request, await read(request))
            values = decode_table(device.table, image)
            truth = meter.truth()
            assert to_wh(values[M.IMPORT_ENERGY]) == round(truth["m213_import_wh"])
            assert to_wh(values[M.EXPORT_ENERGY]) == round(truth["m213_export_wh"])
            assert float(values[M.POWER_TOTAL]) == pytest.approx(truth["m213_power_w"])


async def test_no_sunspec_marker_is_a_discovery_error() -> None:
    meter = SimMeter("sdm120", 2)
    async with tcp_poller([meter], [spec("m2", "sunspec", 2, "lan", response_timeout=1.0)]) as (poller, _):
        (result,) = await poller.poll_once()
        assert result.error is not None
        # Discovery finds no marker, and the device says what it is instead.
        assert "configured as sunspec, but the device reports Eastron SDM120-Modbus" in str(result.error)
        assert "bus lan unit 2" in str(result.error)
    unknown = SimMeter("sdm120", 2)
    unknown.faults.exception_code = 2  # says nothing about itself: a plain discovery error
    async with tcp_poller([unknown], [spec("m2", "sunspec", 2, "lan", response_timeout=1.0)]) as (poller, _):
        (result,) = await poller.poll_once()
        assert "no SunSpec marker at 40000, 0, 50000" in str(result.error)


async def test_dead_and_slow_meters_never_delay_the_others(caplog: pytest.LogCaptureFixture) -> None:
    meters = [SimMeter("sdm630", 1), SimMeter("sdm120", 2), SimMeter("sdm630", 3)]
    meters[1].faults.delay_s = 0.25  # slow but within its 0.5 s timeout
    meters[2].faults.no_response = True  # dead
    interval = 0.3
    # Three separate devices: three [[bus]] entries (one endpoint shared by many units is
    # test_shared_tcp_connection.py's subject).
    specs = [
        spec("fast", "sdm630", 1, "a", interval=interval, response_timeout=0.5),
        spec("slow", "sdm120", 2, "b", interval=interval, response_timeout=0.5),
        spec("dead", "sdm630", 3, "c", interval=interval, response_timeout=0.25, offline_after=2,
             offline_interval=30),
    ]
    caplog.set_level(logging.DEBUG, logger="gateway.poller")
    async with tcp_poller(meters, specs, separate=True) as (poller, _):
        samples = await run_for(poller, 2.0)
        status = {s.meter_id: s for s in poller.status()}

    fast = samples["fast"]
    assert len(fast) >= 6  # slots at 0, 0.3, ... 1.8 s
    assert max(gaps_s(fast)) < interval + 0.15
    # The slow meter's 2 requests take 2 x 0.25 s each cycle, in its own connection.
    assert len(samples["slow"]) >= 3
    assert "dead" not in samples
    assert status["dead"].state is MeterState.OFFLINE
    assert status["dead"].failures == 2 and status["dead"].successes == 0
    assert "no answer within 250 ms" in (status["dead"].last_error or "")
    assert status["fast"].state is MeterState.ONLINE and status["fast"].failures == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "dead" in r.getMessage()]
    assert len(errors) == 1 and "offline" in errors[0].getMessage()


async def test_offline_meter_is_probed_less_often_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    meter = SimMeter("sdm630", 5)
    meter.faults.no_response = True
    caplog.set_level(logging.DEBUG, logger="gateway.poller")
    s = spec("m5", "sdm630", 5, "lan", interval=0.1, response_timeout=0.1, retries=0, offline_after=2,
             offline_interval=0.5)
    async with tcp_poller([meter], [s]) as (poller, bus):
        queue: asyncio.Queue[MeterSample] = asyncio.Queue()
        task = asyncio.create_task(poller.run(queue))
        await asyncio.sleep(1.3)
        status = poller.status()[0]
        assert status.state is MeterState.OFFLINE
        # 2 failures to go offline (0, 0.1 s), then one probe every 0.5 s: ~2 more, not ~12.
        assert 3 <= status.failures <= 5
        # One request per attempt (the offline probe is a single read); one may be in flight now.
        assert status.failures <= bus.requests <= status.failures + 1
        meter.faults.no_response = False
        sample = await asyncio.wait_for(queue.get(), timeout=2.0)
        assert not sample.meter_error
        assert poller.status()[0].state is MeterState.ONLINE
        assert poller.status()[0].consecutive_failures == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if "m5" in r.getMessage()]
    assert [lvl for lvl, _ in messages].count(logging.ERROR) == 1
    assert any(lvl == logging.DEBUG and "still offline" in msg for lvl, msg in messages)
    assert any(lvl == logging.INFO and "back online" in msg for lvl, msg in messages)


async def test_exception_answers_name_the_meter_and_are_retried_only_when_busy() -> None:
    meter = SimMeter("sdm120", 9)
    meter.faults.exception_code = 2  # illegal data address: retrying cannot help
    s = spec("m9", "sdm120", 9, "lan", response_timeout=0.5, retries=2, identify="off")
    async with tcp_poller([meter], [s]) as (
        poller,
        bus,
    ):
        (result,) = await poller.poll_once()
        assert isinstance(result.error, MeterExceptionResponse)
        assert result.error.code == 2
        assert str(result.error) == "bus lan unit 9 register 0: Modbus exception code 2"
        assert bus.requests == 1
        meter.faults.exception_code = 6  # device busy: worth asking again, with backoff
        (result,) = await poller.poll_once()
        assert isinstance(result.error, MeterExceptionResponse) and result.error.code == 6
        assert bus.requests == 1 + 3


async def test_per_meter_timeouts_and_corrupt_answers() -> None:
    meters = [SimMeter("sdm120", 1), SimMeter("sdm120", 2), SimMeter("sdm120", 3)]
    for m in meters[:2]:
        m.faults.delay_s = 0.4  # a meter that needs its 600 ms
    meters[2].faults.corrupt = True
    specs = [
        spec("patient", "sdm120", 1, "a", response_timeout=0.6),
        spec("hasty", "sdm120", 2, "b", response_timeout=0.2, retries=1),
        spec("garbled", "sdm120", 3, "c", response_timeout=0.3, retries=1),
    ]
    async with tcp_poller(meters, specs, separate=True) as (poller, _):
        started = time.monotonic()
        patient, hasty, garbled = await poller.poll_once()
        elapsed = time.monotonic() - started
    assert patient.ok
    assert isinstance(hasty.error, MeterTimeout) and "within 200 ms" in str(hasty.error)
    assert garbled.error is not None and not garbled.ok
    # Separate devices are polled concurrently: the patient meter's 3 x 0.4 s dominates, not the sum.
    assert elapsed < 1.9


async def test_counter_reset_is_flagged_then_rebaselined() -> None:
    meter = SimMeter("sdm120", 4, speedup=1.0)
    s = spec("m4", "sdm120", 4, "lan", interval=0.1, response_timeout=0.5)
    async with tcp_poller([meter], [s]) as (poller, _):
        queue: asyncio.Queue[MeterSample] = asyncio.Queue()
        task = asyncio.create_task(poller.run(queue))
        before = [await asyncio.wait_for(queue.get(), 2.0) for _ in range(2)]
        meter.reset_counters()
        while not queue.empty():
            queue.get_nowait()
        after = [await asyncio.wait_for(queue.get(), 2.0) for _ in range(5)]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert all(not x.meter_error for x in before)
    # The first samples after the reset may still predate it (read before reset_counters ran).
    flagged = [x for x in after if x.meter_error]
    assert len(flagged) == 3
    first = flagged[0]
    assert any(p.startswith("import_energy went backwards") for p in first.problems)
    assert first.import_wh < before[-1].import_wh  # the sample carries what the meter said
    assert any("new baseline" in p for p in flagged[-1].problems)
    assert not after[-1].meter_error and after[-1].problems == ()


async def test_samples_iterator_and_clean_cancellation() -> None:
    meters = [SimMeter("sdm120", 1), SimMeter("sdm630", 2)]
    specs = [spec("a", "sdm120", 1, "lan", interval=0.1), spec("b", "sdm630", 2, "lan", interval=0.1)]
    async with tcp_poller(meters, specs) as (poller, _):
        seen: set[str] = set()
        iterator = poller.samples()
        async for sample in iterator:
            seen.add(sample.meter_id)
            if seen == {"a", "b"}:
                break
        await iterator.aclose()  # type: ignore[attr-defined]
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("gateway-")]


async def test_unreachable_host_fails_fast_with_a_named_error() -> None:
    with socket.socket() as s:  # a port nobody listens on: bind, learn it, close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bus = TcpBus("lan", "127.0.0.1", port, connect_timeout=1.0)
    async with Poller([bus], [spec("m1", "sdm630", 1, "lan", response_timeout=0.5, retries=3)]) as poller:
        started = time.monotonic()
        (result,) = await poller.poll_once()
    assert isinstance(result.error, BusUnavailable)
    assert str(result.error) == f"bus lan: cannot open 127.0.0.1:{port}: connection refused"
    assert bus.requests == 0
    assert time.monotonic() - started < 0.5  # refused once, not retried within the cycle


async def test_between_full_reads_only_the_signed_fields_are_read() -> None:
    """values_interval: an SDM630's every measurement takes 3 requests, its counters and total power 1.
    Between full reads the sample holds the fresh signed fields and the other values of the last full
    read, and says it is not complete (telemetry publishes only complete samples)."""
    meter = SimMeter("sdm630", 1, seed=5)
    meter_spec = spec("m1", "sdm630", 1, "lan", interval=0.1, response_timeout=1.0, values_interval=0.5)
    async with tcp_poller([meter], [meter_spec]) as (poller, bus):
        (first,) = await poller.poll_once()  # identity, then everything
        assert first.sample is not None and first.sample.complete
        full_values = dict(first.sample.values)
        assert "voltage_l1" in full_values and "import_energy" in full_values
        kinds: list[tuple[bool, int]] = []
        for _ in range(12):
            await asyncio.sleep(0.1)
            meter.pause()  # hold the registers still between the read and the comparison
            before = bus.requests
            (result,) = await poller.poll_once()
            sample = result.sample
            assert sample is not None and result.ok, result.error
            kinds.append((sample.complete, bus.requests - before))
            truth = meter.truth()
            assert sample.import_wh == expected_wh(truth, "import", "sdm630")  # fresh at every poll
            assert sample.export_wh == expected_wh(truth, "export", "sdm630")
            assert sample.power_w == round(truth["power_w"])
            assert set(sample.values) == set(full_values)  # the rest from the last full read
            if sample.complete:
                full_values = dict(sample.values)
            else:
                assert sample.values["voltage_l1"] == full_values["voltage_l1"]
            meter.resume()
    assert {requests for complete, requests in kinds if complete} == {3}
    assert {requests for complete, requests in kinds if not complete} == {1}
    # One full read about every 0.5 s of 0.1 s polls (scheduling may stretch a poll): 2 to 4 of 12.
    assert 2 <= sum(complete for complete, _ in kinds) <= 4, kinds
