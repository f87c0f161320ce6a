"""``gridtokenx meter-sim``: argument checking, fault scheduling, and the real command as a subprocess."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
from meter_sim import SerialPair, SimMeter
from meter_sim.cli import FaultSpec, SimConfig, _run_faults, add_arguments, config_from_args, run
from meter_sim.errors import ConfigError
from pymodbus.exceptions import ModbusIOException
from simtest_helpers import FAULT_TIMEOUT_S, rtu_client, tcp_client

REPO = Path(__file__).resolve().parents[2]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="meter-sim")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_model_and_units_and_meter_entries_combine() -> None:
    cfg = config_from_args(_args("--model", "sdm630", "--unit", "1", "--unit", "4", "--meter", "sunspec:9",
                                 "--tcp", "127.0.0.1:5020", "--fault", "4:slow", "--fault", "corrupt"))
    assert cfg.meters == [("sdm630", 1), ("sdm630", 4), ("sunspec", 9)]
    assert cfg.tcp == ("127.0.0.1", 5020) and cfg.serial is None
    assert cfg.faults == [FaultSpec("slow", 4), FaultSpec("corrupt", None)]
    single = config_from_args(_args("--model", "sdm120", "--serial", "/dev/ttyUSB0", "--baud", "19200"))
    assert single.meters == [("sdm120", 1)] and single.serial == "/dev/ttyUSB0" and single.baud == 19200
    v6 = config_from_args(_args("--meter", "sdm630:2", "--tcp", "[::1]:1502"))
    assert v6.tcp == ("::1", 1502)


def test_every_problem_is_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args("--model", "sdm630", "--unit", "0", "--unit", "3", "--meter", "sdm120:3", "--meter", "abb:1",
                 "--tcp", "localhost", "--speedup", "-2", "--exception-code", "0", "--fault", "8:slow",
                 "--fault", "melt")
    assert run(args) == 2
    err = capsys.readouterr().err
    for expected in ("unit 0", "unit id 3 given twice", "'abb:1'", "HOST:PORT", "--speedup",
                     "--exception-code", "'8:slow'", "'melt'"):
        assert expected in err, expected


@pytest.mark.parametrize(("argv", "message"), [
    (("--unit", "2", "--tcp", "127.0.0.1:0"), "--unit needs --model"),
    (("--tcp", "127.0.0.1:0"), "no meters"),
    (("--model", "sdm630", "--tcp", "127.0.0.1:70000"), "0..65535"),
    (("--model", "sdm630", "--serial", "/dev/x", "--baud", "0"), "--baud"),
    (("--model", "sdm630", "--tcp", "127.0.0.1:0", "--sunspec-float"), "--sunspec-float"),
])
def test_single_mistakes_name_the_option(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_args(_args(*argv))


def test_a_transport_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _args("--model", "sdm630")
    assert exc.value.code == 2
    assert "--tcp" in capsys.readouterr().err


async def test_faults_start_after_the_delay_and_end_after_their_duration() -> None:
    meters = {1: SimMeter("sdm630", 1), 2: SimMeter("sdm630", 2, speedup=0)}
    cfg = SimConfig(meters=[("sdm630", 1), ("sdm630", 2)], tcp=("127.0.0.1", 0), serial=None,
                    faults=[FaultSpec("exception", 1), FaultSpec("counter-reset", 2)], exception_code=6,
                    fault_after_s=0.2, fault_for_s=0.3)
    task = asyncio.create_task(_run_faults(meters, cfg))
    await asyncio.sleep(0.1)
    assert meters[1].faults.exception_code is None and meters[2].truth()["import_kwh"] > 1000
    await asyncio.sleep(0.2)
    assert meters[1].faults.exception_code == 6
    assert meters[2].faults.exception_code is None and meters[2].truth()["import_kwh"] == 0.0
    await asyncio.wait_for(task, 1.0)
    assert not meters[1].faults.any
    assert meters[2].truth()["import_kwh"] == 0.0  # a reset is not undone when faults clear


def _open_log(path: Path) -> BinaryIO:
    return path.open("wb")


@asynccontextmanager
async def _meter_sim(tmp_path: Path, *argv: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Run ``python -m gridtokenx meter-sim ARGV`` and yield it with its ready line."""
    log_path = tmp_path / "meter-sim.log"
    with _open_log(log_path) as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gridtokenx", "meter-sim", *argv,
            stdout=asyncio.subprocess.PIPE, stderr=log, cwd=REPO,
            env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"},
        )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20.0)).decode()
        assert line.startswith("meter-sim ready: "), f"{line!r}; log: {log_path.read_text()}"
        yield proc, line.strip()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.modbus
async def test_cli_serves_tcp_resets_on_sigusr1_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with _meter_sim(tmp_path, "--model", "sdm630", "--unit", "1", "--unit", "2",
                          "--tcp", "127.0.0.1:0", "--speedup", "0", "--seed", "5") as (proc, ready):
        assert ready.endswith("units 1,2")
        port = int(ready.split()[3].rsplit(":", 1)[1])
        twin = SimMeter("sdm630", 2, seed=5, speedup=0)  # same seed, same unit: same numbers
        async with tcp_client(port) as client:
            r = await client.read_input_registers(0x0034, count=0x18, device_id=2)
            f32 = client.DATATYPE.FLOAT32
            assert client.convert_from_registers(r.registers[0:2], f32) == twin.truth()["power_w"]
            assert client.convert_from_registers(r.registers[0x14:0x16], f32) == twin.truth()["import_kwh"]
            proc.send_signal(signal.SIGUSR1)
            for _ in range(50):
                r = await client.read_input_registers(0x48, count=2, device_id=2)
                if client.convert_from_registers(r.registers, f32) == 0.0:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("SIGUSR1 did not reset the counters")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10.0) == 0


@pytest.mark.modbus
@pytest.mark.serial
async def test_cli_serves_several_models_on_one_serial_bus_with_a_silent_unit(tmp_path: Path) -> None:
    async with SerialPair() as (bus, master):
        async with _meter_sim(tmp_path, "--meter", "sdm120:1", "--meter", "sunspec:2", "--serial", bus,
                              "--baud", "38400", "--fault", "1:no-response") as (proc, ready):
            assert ready == f"meter-sim ready: rtu {bus} units 1,2"
            async with rtu_client(master, baudrate=38400, client_timeout=FAULT_TIMEOUT_S) as client:
                marker = await client.read_holding_registers(40000, count=2, device_id=2)
                assert marker.registers == [0x5375, 0x6E53]
                with pytest.raises(ModbusIOException):
                    await client.read_input_registers(0x48, count=2, device_id=1)
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 10.0) == 0


async def test_cli_exits_nonzero_when_the_serial_device_cannot_be_opened(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridtokenx", "meter-sim", "--model", "sdm630",
        "--serial", str(tmp_path / "no-such-tty"), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20.0)
    assert proc.returncode == 1
    assert b"no-such-tty" in err and out == b""
