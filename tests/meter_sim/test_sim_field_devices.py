"""What real field devices do that the gateway must cope with, in the simulator: Eastron meters that say
what they are, a converter that takes one connection, a server that answers every unit id, unsolicited
frames, and time running faster than real (--speedup) with the gateway setting it needs."""

from __future__ import annotations

import asyncio
import math
import struct
import subprocess
import sys
from decimal import Decimal

import pytest
from meter_sim import SimMeter, serve_tcp
from meter_sim.cli import speedup_note
from meter_sim.devices.sdm import FIRMWARE_VERSION, IDENTITY_BLOCK, METER_CODES, SERIAL_BASE
from meter_sim.errors import ModbusExceptionReply
from simtest_helpers import ManualClock, tcp_client

pytestmark = pytest.mark.modbus


@pytest.mark.parametrize(("model", "code"), [("sdm120", 0x0020), ("sdm630", 0x0070)])
def test_eastron_meters_report_serial_meter_code_and_firmware(model: str, code: int) -> None:
    meter = SimMeter(model, 7)
    hi, lo, reported, firmware = meter.read_registers(3, IDENTITY_BLOCK, 4)
    assert ((hi << 16) | lo, reported, firmware) == (SERIAL_BASE + 7, code, FIRMWARE_VERSION)
    assert METER_CODES[model] == code
    assert meter.read_registers(3, 0xFC02, 1) == [code]  # the meter code on its own, as some tools read it
    with pytest.raises(ModbusExceptionReply) as excinfo:  # unmapped holding registers between the blocks
        meter.read_registers(3, 0x0020, 4)
    assert excinfo.value.code == 2
    assert meter.read_registers(3, 0x0014, 2) == list(struct.unpack(">HH", struct.pack(">f", 7.0)))


async def test_a_converter_that_takes_one_connection_refuses_the_second() -> None:
    meter = SimMeter("sdm120", 1, speedup=0)
    async with serve_tcp([meter], max_connections=1) as server, tcp_client(server.port) as first:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(100), 2.0) == b""  # closed at once
        writer.close()
        r = await first.read_input_registers(0, count=2, device_id=1)
        assert not r.isError()
        assert (server.connections_accepted, server.connections_refused, server.peak_connections) == (1, 1, 1)
        assert server.connection_count == 1


async def test_a_server_that_ignores_the_unit_id_answers_every_one() -> None:
    meter = SimMeter("sdm630", 1, speedup=0)
    async with serve_tcp([meter], answer_any_unit=True) as server, tcp_client(server.port) as client:
        for unit in (1, 17, 247):
            r = await client.read_holding_registers(IDENTITY_BLOCK, count=4, device_id=unit)
            assert not r.isError() and r.registers[:2] == [(SERIAL_BASE + 1) >> 16, (SERIAL_BASE + 1) & 0xFFFF]
    async with serve_tcp([meter]) as server:  # without the switch: nobody at unit 17, no answer at all
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(struct.pack(">HHHBBHH", 7, 0, 6, 17, 3, IDENTITY_BLOCK, 4))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(100), 0.3)
        writer.close()


async def test_unsolicited_frames_follow_each_answer_under_another_transaction_id() -> None:
    meter = SimMeter("sdm120", 1, speedup=0)
    meter.faults.unsolicited = True
    async with serve_tcp([meter]) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(struct.pack(">HHHBBHH", 42, 0, 6, 1, 4, 0, 2))
        data = b""
        while len(data) < 2 * 13:
            data += await asyncio.wait_for(reader.read(100), 2.0)
        writer.close()
    tids = [struct.unpack_from(">H", data, 0)[0], struct.unpack_from(">H", data, 13)[0]]
    assert tids[0] == 42 and tids[1] != 42
    assert data[6:13] == data[19:26]  # the same answer again: only the transaction id differs


def test_speedup_note_gives_a_max_power_that_keeps_readings_plausible(manual_clock: ManualClock) -> None:
    """With time 60x faster, the counters grow 60x faster than the power shown; the note's max_power_w
    makes the gateway's plausibility bound (1.5 x max_power_w) hold for every second of a simulated day."""
    from gateway.measurements import Measurement as M
    from gateway.plausibility import PlausibilityChecker

    meters = [SimMeter(model, 1, speedup=60, clock=manual_clock) for model in ("sdm630", "sdm120")]
    note = speedup_note(meters)
    assert note is not None
    bounds = {model: int(value) for value, model in
              (part.split(" for ") for part in note.split("configure ")[1].split(" in the")[0]
               .replace("max_power_w = ", "").split(", "))}
    for meter in meters:
        assert bounds[meter.model] == math.ceil(60 * meter.max_abs_power_w / 1.5)
        checker = PlausibilityChecker(rated_power_w=bounds[meter.model])
        default = PlausibilityChecker(rated_power_w=83100 if meter.model == "sdm630" else 45 * 277)
        flagged_by_default = 0
        for second in range(0, 1440):  # a simulated day in 24 real minutes, read every second
            counters = meter.counters()
            values = {M.IMPORT_ENERGY: Decimal(counters.import_wh), M.EXPORT_ENERGY: Decimal(counters.export_wh)}
            assert checker.check(values, second * 1000).ok, (meter.model, second)
            flagged_by_default += not default.check(values, second * 1000).ok
            manual_clock.advance(1.0)
        assert flagged_by_default > 0  # without the note's setting, the gateway would flag readings
    assert speedup_note([SimMeter("sdm630", 1, speedup=1)]) is None


def test_the_simulator_prints_the_note_and_help_explains_speedup() -> None:
    helptext = subprocess.run([sys.executable, "-m", "gridtokenx", "meter-sim", "--help"], capture_output=True,
                              text=True, timeout=30).stdout
    assert "max_power_w" in helptext and "METER_ERROR" in " ".join(helptext.split())
    proc = subprocess.Popen([sys.executable, "-m", "gridtokenx", "meter-sim", "--model", "sdm630", "--unit", "1",
                             "--speedup", "60", "--tcp", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        note = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert ready.startswith("meter-sim ready: tcp 127.0.0.1:")
    assert note.startswith("meter-sim note: --speedup 60") and "max_power_w = " in note and "sdm630" in note
