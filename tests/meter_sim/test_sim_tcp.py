"""Simulated meters over real Modbus TCP, read with pymodbus' async client."""

from __future__ import annotations

import asyncio
import time

import pytest
from meter_sim import SimMeter, serve_tcp
from meter_sim.protocol import Dispatcher
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from simtest_helpers import FAULT_TIMEOUT_S, tcp_client

pytestmark = pytest.mark.modbus


async def _float(client: AsyncModbusTcpClient, address: int, unit: int) -> float:
    r = await client.read_input_registers(address, count=2, device_id=unit)
    assert not r.isError(), r
    value = client.convert_from_registers(r.registers, client.DATATYPE.FLOAT32)
    assert isinstance(value, float)
    return value


async def test_sdm630_import_export_and_power_equal_truth() -> None:
    meter = SimMeter("sdm630", 1, speedup=0)
    async with serve_tcp([meter]) as server, tcp_client(server.port) as client:
        truth = meter.truth()
        assert await _float(client, 0x0048, 1) == truth["import_kwh"]
        assert await _float(client, 0x004A, 1) == truth["export_kwh"]
        assert await _float(client, 0x0034, 1) == truth["power_w"]
        assert 220.0 < await _float(client, 0x0000, 1) < 240.0
        assert 49.9 < await _float(client, 0x0046, 1) < 50.1


async def test_one_block_read_matches_last_truth_while_the_clock_runs() -> None:
    meter = SimMeter("sdm630", 1, speedup=3600)
    async with serve_tcp([meter]) as server, tcp_client(server.port) as client:
        r = await client.read_input_registers(0x0000, count=0x4C, device_id=1)
        truth = meter.last_truth
        assert truth is not None
        decode = client.convert_from_registers
        assert decode(r.registers[0x48:0x4A], client.DATATYPE.FLOAT32) == truth["import_kwh"]
        assert decode(r.registers[0x4A:0x4C], client.DATATYPE.FLOAT32) == truth["export_kwh"]
        assert decode(r.registers[0x34:0x36], client.DATATYPE.FLOAT32) == truth["power_w"]


async def test_counters_grow_with_speedup() -> None:
    # 4 simulated hours per real second from 10:00: a sunny stretch, so export must climb.
    meter = SimMeter("sdm630", 1, speedup=4 * 3600)
    async with serve_tcp([meter]) as server, tcp_client(server.port) as client:
        imp0, exp0 = await _float(client, 0x48, 1), await _float(client, 0x4A, 1)
        await asyncio.sleep(0.5)
        imp1, exp1 = await _float(client, 0x48, 1), await _float(client, 0x4A, 1)
        assert exp1 - exp0 > 1.0
        assert imp1 >= imp0
        truth = meter.last_truth
        assert truth is not None and truth["export_kwh"] == exp1


async def test_sunspec_discovery_walks_models_1_and_203() -> None:
    meter = SimMeter("sunspec", 3, speedup=0)
    async with serve_tcp([meter]) as server, tcp_client(server.port) as client:
        models = await _discover(client, 3)
        assert [m[0] for m in models] == [1, 203]
        common = await client.read_holding_registers(models[0][1] + 2, count=16, device_id=3)
        manufacturer = client.convert_from_registers(common.registers, client.DATATYPE.STRING)
        assert isinstance(manufacturer, str) and manufacturer.rstrip("\0") == "GridTokenX"


async def test_sunspec_float_discovery_also_finds_213_and_it_agrees() -> None:
    meter = SimMeter("sunspec", 3, speedup=0, sunspec_float=True)
    async with serve_tcp([meter]) as server, tcp_client(server.port) as client:
        models = dict((mid, addr) for mid, addr, _ in await _discover(client, 3))
        assert list(models) == [1, 203, 213]
        base = models[213]
        r = await client.read_holding_registers(base + 60, count=10, device_id=3)
        exp_wh = client.convert_from_registers(r.registers[0:2], client.DATATYPE.FLOAT32)
        imp_wh = client.convert_from_registers(r.registers[8:10], client.DATATYPE.FLOAT32)
        truth = meter.truth()
        assert imp_wh == truth["m213_import_wh"] and exp_wh == truth["m213_export_wh"]
        assert imp_wh == pytest.approx(truth["import_wh"], abs=1.0)


@pytest.mark.parametrize("energy_sf", [0, 1])
async def test_sunspec_model_203_energy_with_scale_factor_equals_truth(energy_sf: int) -> None:
    meter = SimMeter("sunspec", 4, speedup=0, sunspec_energy_sf=energy_sf)
    async with serve_tcp([meter]) as server, tcp_client(server.port) as client:
        models = {mid: addr for mid, addr, _ in await _discover(client, 4)}
        base = models[203]
        r = await client.read_holding_registers(base, count=56, device_id=4)
        regs = r.registers
        u32, i16 = client.DATATYPE.UINT32, client.DATATYPE.INT16
        sf = client.convert_from_registers(regs[54:55], i16)
        assert sf == energy_sf
        exp_raw = client.convert_from_registers(regs[38:40], u32)
        imp_raw = client.convert_from_registers(regs[46:48], u32)
        assert isinstance(imp_raw, int) and isinstance(exp_raw, int) and isinstance(sf, int)
        truth = meter.truth()
        assert imp_raw * 10**sf == truth["import_wh"]
        assert exp_raw * 10**sf == truth["export_wh"]
        assert abs(imp_raw * 10**sf - truth["import_wh_exact"]) < 10**sf
        w = client.convert_from_registers(regs[18:19], i16)
        w_sf = client.convert_from_registers(regs[22:23], i16)
        assert isinstance(w, int) and isinstance(w_sf, int)
        assert w * 10**w_sf == truth["power_w"]


async def _discover(client: AsyncModbusTcpClient, unit: int) -> list[tuple[int, int, int]]:
    marker = await client.read_holding_registers(40000, count=2, device_id=unit)
    assert marker.registers == [0x5375, 0x6E53]  # "SunS"
    found = []
    addr = 40002
    for _ in range(10):
        r = await client.read_holding_registers(addr, count=2, device_id=unit)
        model_id, length = r.registers
        if model_id == 0xFFFF:
            assert length == 0
            return found
        found.append((model_id, addr, length))
        addr += 2 + length
    raise AssertionError("no SunSpec end marker")


async def test_no_response_fault_times_out_while_the_other_meter_answers() -> None:
    quiet, other = SimMeter("sdm630", 1, speedup=0), SimMeter("sdm120", 2, speedup=0)
    quiet.faults.no_response = True
    async with serve_tcp([quiet, other]) as server, tcp_client(server.port, FAULT_TIMEOUT_S) as client:
        started = time.monotonic()
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0x48, count=2, device_id=1)
        assert time.monotonic() - started >= FAULT_TIMEOUT_S * 0.9
        assert await _float(client, 0x48, 2) == other.truth()["import_kwh"]
        quiet.faults.no_response = False
        assert await _float(client, 0x48, 1) == quiet.truth()["import_kwh"]


async def test_unknown_unit_gets_no_answer() -> None:
    async with serve_tcp([SimMeter("sdm630", 1)]) as server, tcp_client(server.port, FAULT_TIMEOUT_S) as client:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0x48, count=2, device_id=9)


@pytest.mark.parametrize("code", [2, 4, 6])
async def test_exception_fault_returns_that_exception_code(code: int) -> None:
    meter = SimMeter("sdm630", 1)
    meter.faults.exception_code = code
    async with serve_tcp([meter]) as server, tcp_client(server.port) as client:
        r = await client.read_input_registers(0x48, count=2, device_id=1)
        assert r.isError()
        assert r.exception_code == code
        meter.faults.exception_code = None
        r = await client.read_input_registers(0x48, count=2, device_id=1)
        assert not r.isError()


async def test_protocol_errors_get_the_standard_exceptions() -> None:
    async with serve_tcp([SimMeter("sdm630", 1)]) as server, tcp_client(server.port) as client:
        beyond = await client.read_input_registers(0x0200, count=2, device_id=1)
        assert beyond.isError() and beyond.exception_code == 2  # illegal data address
        probe = await client.read_holding_registers(40000, count=2, device_id=1)
        assert probe.isError() and probe.exception_code == 2
        write = await client.write_register(0x0014, 5, device_id=1)
        assert write.isError() and write.exception_code == 1  # illegal function


def test_request_with_a_count_over_125_gets_exception_3() -> None:
    # pymodbus' client refuses to send such a request, so talk PDU directly to the dispatcher.
    dispatcher = Dispatcher([SimMeter("sdm630", 1)], where="test")
    reply = dispatcher.handle(1, bytes([0x04, 0x00, 0x00, 0x00, 126]))
    assert reply is not None and reply.pdu == bytes([0x84, 0x03])
    assert dispatcher.handle(2, bytes([0x04, 0, 0, 0, 2])) is None


async def test_slow_fault_delays_the_answer() -> None:
    meter = SimMeter("sdm630", 1, speedup=0)
    async with serve_tcp([meter]) as server, tcp_client(server.port, client_timeout=2.0) as client:
        started = time.monotonic()
        await _float(client, 0x48, 1)
        fast = time.monotonic() - started
        meter.faults.delay_s = 0.3
        started = time.monotonic()
        assert await _float(client, 0x48, 1) == meter.truth()["import_kwh"]
        slow = time.monotonic() - started
        assert slow >= 0.3 and slow > fast + 0.2


async def test_slow_fault_beyond_the_client_timeout_is_a_timeout() -> None:
    meter = SimMeter("sdm630", 1)
    meter.faults.delay_s = FAULT_TIMEOUT_S + 0.4
    async with serve_tcp([meter]) as server, tcp_client(server.port, FAULT_TIMEOUT_S) as client:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0x48, count=2, device_id=1)


async def test_corrupt_fault_is_an_error_for_the_client() -> None:
    meter = SimMeter("sdm630", 1, speedup=0)
    meter.faults.corrupt = True
    async with serve_tcp([meter]) as server:
        async with tcp_client(server.port, FAULT_TIMEOUT_S) as client:
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0x48, count=2, device_id=1)
        meter.faults.corrupt = False
        async with tcp_client(server.port) as client:
            assert await _float(client, 0x48, 1) == meter.truth()["import_kwh"]


async def test_counter_reset_fault_makes_counters_drop() -> None:
    meter = SimMeter("sdm630", 1, speedup=600)
    async with serve_tcp([meter]) as server, tcp_client(server.port) as client:
        before = await _float(client, 0x48, 1), await _float(client, 0x4A, 1)
        assert min(before) > 1000
        meter.reset_counters()
        after = await _float(client, 0x48, 1), await _float(client, 0x4A, 1)
        assert after[0] < 1.0 and after[1] < 1.0
        assert after[0] < before[0] and after[1] < before[1]


async def test_several_clients_and_units_share_one_server() -> None:
    meters = [SimMeter("sdm630", 1, speedup=0), SimMeter("sdm120", 2, speedup=0), SimMeter("sunspec", 3)]
    async with serve_tcp(meters) as server, tcp_client(server.port) as a, tcp_client(server.port) as b:
        values = await asyncio.gather(_float(a, 0x48, 1), _float(b, 0x48, 2), _float(a, 0x4A, 1))
        assert values == [meters[0].truth()["import_kwh"], meters[1].truth()["import_kwh"],
                          meters[0].truth()["export_kwh"]]
        marker = await b.read_holding_registers(40000, count=2, device_id=3)
        assert marker.registers == [0x5375, 0x6E53]


async def test_server_close_ends_open_connections_and_frees_the_port() -> None:
    meter = SimMeter("sdm630", 1)
    async with serve_tcp([meter]) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(bytes.fromhex("0001 0000 0006 01 04 0048 0002"))
        answer = await asyncio.wait_for(reader.readexactly(13), 2.0)
        assert answer[:9] == bytes.fromhex("0001 0000 0007 01 04 04")
        port = server.port
    # Leaving the block closed the connection that was still open, and nothing listens any more.
    assert await asyncio.wait_for(reader.read(), 2.0) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_bad_mbap_header_closes_the_connection() -> None:
    async with serve_tcp([SimMeter("sdm630", 1)]) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(bytes.fromhex("0001 0007 0006 01 04 0048 0002"))  # protocol id must be 0
        assert await asyncio.wait_for(reader.read(), 2.0) == b""
        writer.close()
