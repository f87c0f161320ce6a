"""Simulated meters over real Modbus RTU on a socat pty pair, read with pymodbus' serial client."""

from __future__ import annotations

import asyncio
import time

import pytest
import serial
from meter_sim import SerialPair, SimMeter, serve_rtu, wire_time_s
from meter_sim.server import silent_interval_s
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU
from simtest_helpers import FAULT_TIMEOUT_S, rtu_client

pytestmark = [pytest.mark.modbus, pytest.mark.serial]


async def _float(client: AsyncModbusSerialClient, address: int, unit: int) -> float:
    r = await client.read_input_registers(address, count=2, device_id=unit)
    assert not r.isError(), r
    value = client.convert_from_registers(r.registers, client.DATATYPE.FLOAT32)
    assert isinstance(value, float)
    return value


async def test_two_meters_on_one_bus_answer_by_unit_id_and_a_third_id_is_silent() -> None:
    sdm630, sdm120 = SimMeter("sdm630", 1, speedup=0), SimMeter("sdm120", 2, speedup=0, seed=3)
    async with SerialPair() as (bus, master), serve_rtu([sdm630, sdm120], bus, baudrate=38400):
        async with rtu_client(master, baudrate=38400, client_timeout=FAULT_TIMEOUT_S) as client:
            assert await _float(client, 0x48, 1) == sdm630.truth()["import_kwh"]
            assert await _float(client, 0x34, 1) == sdm630.truth()["power_w"]
            assert await _float(client, 0x48, 2) == sdm120.truth()["import_kwh"]
            assert await _float(client, 0x0C, 2) == sdm120.truth()["power_w"]
            assert sdm630.truth()["power_w"] != sdm120.truth()["power_w"]
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0x48, count=2, device_id=3)
            # The silent id did not stall the bus: both meters answer straight after.
            assert await _float(client, 0x4A, 1) == sdm630.truth()["export_kwh"]
            assert await _float(client, 0x4A, 2) == sdm120.truth()["export_kwh"]


async def test_sunspec_over_rtu() -> None:
    meter = SimMeter("sunspec", 7, speedup=0)
    async with SerialPair() as (bus, master), serve_rtu([meter], bus, baudrate=115200):
        async with rtu_client(master, baudrate=115200) as client:
            marker = await client.read_holding_registers(40000, count=4, device_id=7)
            assert marker.registers == [0x5375, 0x6E53, 1, 66]
            r = await client.read_holding_registers(40070, count=56, device_id=7)
            imp = client.convert_from_registers(r.registers[46:48], client.DATATYPE.UINT32)
            assert r.registers[0] == 203 and imp == meter.truth()["import_wh"]


async def test_no_response_and_exception_faults_on_the_bus() -> None:
    a, b = SimMeter("sdm630", 1, speedup=0), SimMeter("sdm630", 2, speedup=0)
    async with SerialPair() as (bus, master), serve_rtu([a, b], bus, baudrate=38400):
        async with rtu_client(master, baudrate=38400, client_timeout=FAULT_TIMEOUT_S) as client:
            a.faults.no_response = True
            b.faults.exception_code = 6
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0x48, count=2, device_id=1)
            r = await client.read_input_registers(0x48, count=2, device_id=2)
            assert r.isError() and r.exception_code == 6
            a.faults.clear()
            b.faults.clear()
            assert await _float(client, 0x48, 1) == a.truth()["import_kwh"]
            assert await _float(client, 0x48, 2) == b.truth()["import_kwh"]


async def test_corrupt_fault_sends_a_frame_with_a_bad_crc() -> None:
    meter = SimMeter("sdm630", 1, speedup=0)
    meter.faults.corrupt = True
    async with SerialPair() as (bus, master), serve_rtu([meter], bus, baudrate=38400, emulate_wire_time=False):
        # Look at the raw bytes first: a whole frame arrives, but its CRC does not match.
        with serial.Serial(master, 38400, timeout=1.0) as port:
            request = FramerRTU.compute_CRC(bytes.fromhex("01 04 0048 0002")).to_bytes(2, "big")
            port.write(bytes.fromhex("01 04 0048 0002") + request)
            await asyncio.sleep(0.2)  # the server answers from this event loop; do not block it
            frame = port.read(9)
        assert len(frame) == 9 and frame[:2] == bytes.fromhex("0104")
        crc = int.from_bytes(frame[-2:], "big")
        assert not FramerRTU.check_CRC(frame[:-2], crc)
        async with rtu_client(master, baudrate=38400, client_timeout=FAULT_TIMEOUT_S) as client:
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0x48, count=2, device_id=1)
            meter.faults.corrupt = False
            await asyncio.sleep(0.1)  # let the line fall silent, as a master does after an error
            assert await _float(client, 0x48, 1) == meter.truth()["import_kwh"]


async def test_slow_fault_delays_the_answer_on_the_bus() -> None:
    meter = SimMeter("sdm630", 1, speedup=0)
    meter.faults.delay_s = 0.3
    async with SerialPair() as (bus, master), serve_rtu([meter], bus, baudrate=38400):
        async with rtu_client(master, baudrate=38400) as client:
            started = time.monotonic()
            assert await _float(client, 0x48, 1) == meter.truth()["import_kwh"]
            assert time.monotonic() - started >= 0.3


async def test_wire_time_is_emulated_at_the_baud_rate() -> None:
    meter = SimMeter("sdm630", 1, speedup=0)
    # 80 registers: an 8-byte request and a 165-byte answer, 173 characters of 11 bits at 9600 baud.
    expected = wire_time_s(8, 5 + 160, 9600)
    assert expected == pytest.approx(173 * 11 / 9600 + 3.5 * 11 / 9600)
    async with SerialPair() as (bus, master):
        async with serve_rtu([meter], bus, baudrate=9600), rtu_client(master) as client:
            started = time.monotonic()
            r = await client.read_input_registers(0, count=80, device_id=1)
            emulated = time.monotonic() - started
            assert len(r.registers) == 80
        async with serve_rtu([meter], bus, baudrate=9600, emulate_wire_time=False), rtu_client(master) as client:
            started = time.monotonic()
            await client.read_input_registers(0, count=80, device_id=1)
            immediate = time.monotonic() - started
    assert emulated >= expected
    assert emulated < expected + 0.15
    assert immediate < expected / 2


def test_silent_interval_follows_the_specification() -> None:
    assert silent_interval_s(9600) == pytest.approx(3.5 * 11 / 9600)
    assert silent_interval_s(19200) == pytest.approx(3.5 * 11 / 19200)
    assert silent_interval_s(115200) == pytest.approx(0.00175)  # fixed above 19200 baud


async def test_noise_on_an_idle_line_is_dropped_before_the_next_request() -> None:
    meter = SimMeter("sdm630", 1, speedup=0)
    async with SerialPair() as (bus, master), serve_rtu([meter], bus, baudrate=38400):
        with serial.Serial(master, 38400, timeout=0.3) as port:
            port.write(b"\x01\x04\x00")  # a cut-off frame, then the line goes quiet
            await asyncio.sleep(0.1)
            frame = bytes.fromhex("01 04 0048 0002")
            port.write(frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big"))
            await asyncio.sleep(0.2)
            answer = port.read(9)
        assert len(answer) == 9
        assert FramerRTU.check_CRC(answer[:-2], int.from_bytes(answer[-2:], "big"))


async def test_server_notices_when_the_line_goes_away() -> None:
    pair = SerialPair()
    bus, _master = await pair.open_async()
    try:
        async with serve_rtu([SimMeter("sdm630", 1)], bus) as server:
            pair.close()  # socat stops: the pty is gone
            await asyncio.wait_for(server.wait_closed(), 2.0)
            assert server.error is not None
    finally:
        pair.close()


@pytest.mark.tool
async def test_mbpoll_an_independent_client_reads_the_same_energy() -> None:
    # mbpoll (libmodbus) shares no code with pymodbus: framing, CRC and float word order checked twice.
    meter = SimMeter("sdm630", 1, speedup=0)
    truth = meter.truth()
    async with SerialPair() as (bus, master), serve_rtu([meter], bus, baudrate=19200):
        proc = await asyncio.create_subprocess_exec(
            "mbpoll", "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-t", "3:float", "-B",
            "-r", "73", "-c", "2", "-1", master,  # reference 73 is 1-based: address 0x0048
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 20.0)
    text = out.decode()
    assert proc.returncode == 0, text
    values = dict(line.split(":", 1) for line in text.splitlines() if line.startswith("["))
    # mbpoll prints 6 significant digits
    assert float(values["[73]"]) == pytest.approx(truth["import_kwh"], rel=1e-6)
    assert float(values["[75]"]) == pytest.approx(truth["export_kwh"], rel=1e-6)
