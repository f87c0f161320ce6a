"""Which meter is it? Scan, read and run ask the device, against simulated SDM120, SDM630 and SunSpec
meters, a device that reports nothing about itself, and a server that answers every unit id."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from gwtest_helpers import meter_sim_process, run_gridtokenx, spec
from meter_sim.meter import SimMeter
from meter_sim.server import serve_tcp

from gateway.errors import ModelMismatch
from gateway.identify import EASTRON_CODES, compare, identify
from gateway.poller import MeterState, Poller
from gateway.register_map import RegisterRange
from gateway.transport import TcpBus

pytestmark = [pytest.mark.modbus, pytest.mark.timeout(60)]


def test_meter_codes_name_the_models_we_read() -> None:
    # What the meters report at holding 0xFC02 (the simulator reports the same: meter_sim.devices.sdm).
    from meter_sim.devices.sdm import METER_CODES

    for model, code in METER_CODES.items():
        assert EASTRON_CODES[code][0] == model
    assert EASTRON_CODES[0x0070][1] == "Eastron SDM630-Modbus" and EASTRON_CODES[0x0020][0] == "sdm120"


async def test_each_simulated_device_says_what_it_is() -> None:
    meters = [SimMeter("sdm120", 1), SimMeter("sdm630", 2), SimMeter("sunspec", 3), SimMeter("sdm120", 4)]
    meters[3].faults.exception_code = 2  # answers, but every register is "illegal address": says nothing
    async with serve_tcp(meters) as server, TcpBus("lan", "127.0.0.1", server.port) as bus:
        found = {}
        for unit in (1, 2, 3, 4):

            async def read(request: RegisterRange, unit: int = unit) -> list[int]:
                return await bus.read(unit, request, response_timeout=1.0)

            found[unit] = await identify(read, bus="lan", unit=unit)
    assert (found[1].kind, found[1].model, found[1].serial) == ("eastron", "sdm120", "24000001")
    assert found[1].name == "Eastron SDM120-Modbus" and "meter code 0x0020" in found[1].detail
    assert (found[2].kind, found[2].model, found[2].name) == ("eastron", "sdm630", "Eastron SDM630-Modbus")
    assert (found[3].kind, found[3].model, found[3].serial) == ("sunspec", "sunspec", "GTX-SIM-003")
    assert found[3].manufacturer == "GridTokenX" and "models 1, 203" in found[3].detail
    assert (found[4].kind, found[4].model, found[4].name) == ("unknown", None, "unknown Modbus device")
    # Only a device that positively reports another model contradicts a configuration.
    assert compare("sdm120", found[4]) is None
    assert compare("sdm120", found[2]) == (
        "configured as sdm120, but the device reports Eastron SDM630-Modbus, serial 24000002 (meter code 0x0070, "
        "firmware 0x0102), which is model sdm630"
    )
    assert "which is model sdm120" in (compare("sunspec", found[1]) or "")


async def test_an_sdm630_configured_as_sdm120_is_refused_not_read(caplog: pytest.LogCaptureFixture) -> None:
    """The field report: its L1 power (-1200 W) was signed as the total (-1500 W). Now nothing is read."""
    caplog.set_level(logging.INFO, logger="gateway.poller")
    meter = SimMeter("sdm630", 1)
    async with serve_tcp([meter]) as server:
        bus = TcpBus("lan", "127.0.0.1", server.port)
        async with Poller([bus], [spec("house", "sdm120", 1, "lan", response_timeout=1.0)]) as poller:
            for _ in range(3):
                (result,) = await poller.poll_once()
                assert result.sample is None and isinstance(result.error, ModelMismatch)
            status = poller.status()[0]
    assert status.state is MeterState.REFUSED and status.successes == 0
    assert status.identity is not None and status.identity.model == "sdm630"
    assert status.identity_problem is not None and "reports Eastron SDM630-Modbus" in status.identity_problem
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not once per poll
    assert 'not reading it (identify = "refuse")' in errors[0].getMessage()


async def test_flag_reads_it_but_every_reading_says_meter_error() -> None:
    meter = SimMeter("sdm630", 1)
    meter.pause()
    async with serve_tcp([meter]) as server:
        bus = TcpBus("lan", "127.0.0.1", server.port)
        async with Poller([bus], [spec("house", "sdm120", 1, "lan", response_timeout=1.0, identify="flag")]) as p:
            (first,) = await p.poll_once()
            (second,) = await p.poll_once()
    for result in (first, second):
        assert result.sample is not None and result.sample.meter_error
        assert result.sample.problems[0].startswith("model mismatch: configured as sdm120")
    # What an SDM120 table makes of an SDM630: phase L1 power read as the total -- flagged, never minted.
    assert first.sample is not None and first.sample.values["power_total"] == pytest.approx(meter.truth()["power_w"]
                                                                                            / 3, rel=0.5)


async def test_a_server_answering_every_unit_id_is_one_device_not_two_meters() -> None:
    async with serve_tcp([SimMeter("sdm120", 1)], answer_any_unit=True) as server:
        bus = TcpBus("lan", "127.0.0.1", server.port)
        specs = [spec(m, "sdm120", u, "lan", response_timeout=1.0) for m, u in (("a", 1), ("b", 2))]
        async with Poller([bus], specs) as poller:
            a, b = await poller.poll_once()
    assert a.ok
    assert isinstance(b.error, ModelMismatch)
    assert "like meter a on the same bus: this endpoint answers every unit id" in str(b.error)


def test_scan_names_each_device_by_what_it_reports(tmp_path: Path) -> None:
    sim = ["--meter", "sdm630:1", "--meter", "sdm120:2", "--meter", "sunspec:3", "--meter", "sdm120:4",
           "--fault", "4:exception", "--exception-code", "2", "--speedup", "0", "--tcp", "127.0.0.1:0"]
    with meter_sim_process(sim) as where:
        result = run_gridtokenx("gateway", "scan", "--tcp", f"{where['host']}:{where['port']}", "--units", "1-6",
                                "--timeout", "0.3")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("unit")]
    assert [line.split()[:3] for line in lines] == [
        ["unit", "1", "sdm630"], ["unit", "2", "sdm120"], ["unit", "3", "sunspec"], ["unit", "4", "-"],
    ]
    assert "Eastron SDM630-Modbus, serial 24000001 (meter code 0x0070" in lines[0]
    assert "Eastron SDM120-Modbus, serial 24000002 (meter code 0x0020" in lines[1]
    assert "SunSpec GridTokenX" in lines[2] and "serial GTX-SIM-003" in lines[2]
    assert "unknown Modbus device" in lines[3]
    assert "found 3 meters in 6 unit ids" in result.stdout


def test_scan_of_a_server_answering_every_unit_id_flags_it(tmp_path: Path) -> None:
    with meter_sim_process(["--meter", "sdm630:1", "--answer-any-unit", "--speedup", "0",
                            "--tcp", "127.0.0.1:0"]) as where:
        result = run_gridtokenx("gateway", "scan", "--tcp", f"{where['host']}:{where['port']}", "--units", "1-30",
                                "--timeout", "0.3")
    assert result.returncode == 0, result.stderr
    units = [line for line in result.stdout.splitlines() if line.startswith("unit")]
    assert len(units) == 1  # one device, not 30 meters
    assert "warning: units 1-30 all report serial 24000001: ONE device answering several unit ids" in result.stdout
    assert "found 1 meter in 30 unit ids" in result.stdout


def test_scan_of_a_single_connection_gateway_misses_nobody() -> None:
    """The field report: with 16 connections at once against a converter that takes one, units 7-10 went
    missing. The scan now shares one connection."""
    sim = [*(a for u in (7, 8, 9, 10) for a in ("--meter", f"sdm120:{u}")), "--max-connections", "1",
           "--speedup", "0", "--tcp", "127.0.0.1:0"]
    with meter_sim_process(sim) as where:
        result = run_gridtokenx("gateway", "scan", "--tcp", f"{where['host']}:{where['port']}", "--units", "1-12",
                                "--timeout", "0.2")
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines() if line.startswith("unit")] == ["7", "8", "9", "10"]


def test_scan_says_plainly_when_the_host_refuses() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_gridtokenx("gateway", "scan", "--tcp", f"127.0.0.1:{port}", "--units", "1-3")
    assert result.returncode == 2
    assert result.stderr.strip() == f"gridtokenx gateway scan: cannot open 127.0.0.1:{port}: connection refused"


def test_read_refuses_or_flags_a_wrong_model(tmp_path: Path) -> None:
    with meter_sim_process(["--meter", "sdm630:1", "--meter", "sdm120:2", "--speedup", "0",
                            "--tcp", "127.0.0.1:0"]) as where:
        bus = f'[[bus]]\nname = "b"\ntype = "tcp"\nhost = "{where["host"]}"\nport = {where["port"]}\n\n'
        config = tmp_path / "gateway.toml"
        config.write_text(
            '[gateway]\nid = "gw"\n\n' + bus
            + '[[meter]]\nid = "main"\nmodel = "sdm120"\nunit = 1\nbus = "b"\n\n'
            + '[[meter]]\nid = "heat"\nmodel = "sdm120"\nunit = 2\nbus = "b"\n\n'
        )
        refused = run_gridtokenx("gateway", "read", "--config", str(config))
        flag = config.read_text().replace('unit = 1\nbus = "b"\n', 'unit = 1\nbus = "b"\nidentify = "flag"\n')
        config.write_text(flag)
        flagged = run_gridtokenx("gateway", "read", "--config", str(config), "--json")
    assert refused.returncode == 1
    main, heat = refused.stdout.splitlines()
    assert main.split()[:3] == ["main", "sdm120", "refused"]
    assert "configured as sdm120, but the device reports Eastron SDM630-Modbus" in main
    assert heat.split()[:3] == ["heat", "sdm120", "online"] and heat.endswith("ok")
    assert refused.stderr == ""  # the line above says it: no log line saying it again
    assert flagged.returncode == 1
    import json

    main_json = json.loads(flagged.stdout.splitlines()[0])
    assert main_json["online"] and main_json["meter_error"]
    assert main_json["problems"][0].startswith("model mismatch: configured as sdm120")
    assert main_json["identity"].startswith("Eastron SDM630-Modbus, serial 24000001")
