"""``gridtokenx gateway read`` and ``scan`` as a technician runs them: subprocesses against a running
``gridtokenx meter-sim`` (TCP on a free port, or RTU on a pty pair)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gwtest_helpers import meter_sim_process, run_gridtokenx
from meter_sim.serial_pair import SerialPair

pytestmark = [pytest.mark.modbus, pytest.mark.timeout(60)]

SIM_METERS = ["--meter", "sdm630:1", "--meter", "sdm120:2", "--meter", "sunspec:3", "--speedup", "0"]


def write_config(path: Path, bus: str, meters: list[tuple[str, str, int]]) -> Path:
    text = '[gateway]\nid = "gw-test"\n\n' + bus + "\n"
    for meter_id, model, unit in meters:
        text += f'[[meter]]\nid = "{meter_id}"\nmodel = "{model}"\nunit = {unit}\nbus = "b"\ntimeout = 0.5\n\n'
    path.write_text(text)
    return path


def test_read_prints_one_reading_per_meter_and_fails_for_a_dead_one(tmp_path: Path) -> None:
    with meter_sim_process([*SIM_METERS, "--tcp", "127.0.0.1:0"]) as where:
        bus = f'[[bus]]\nname = "b"\ntype = "tcp"\nhost = "{where["host"]}"\nport = {where["port"]}\n'
        good = write_config(tmp_path / "good.toml", bus, [("main", "sdm630", 1), ("heat", "sdm120", 2),
                                                           ("pv", "sunspec", 3)])
        text = run_gridtokenx("gateway", "read", "--config", str(good))
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert len(lines) == 3
        for line, (meter_id, model) in zip(lines, [("main", "sdm630"), ("heat", "sdm120"), ("pv", "sunspec")],
                                           strict=True):
            assert line.split()[:3] == [meter_id, model, "online"]
            # The simulator starts every meter at 4821.37 kWh imported, 2310.58 kWh exported.
            assert "import 4821370 Wh" in line and "export 2310580 Wh" in line and line.endswith("ok")

        with_dead = write_config(tmp_path / "dead.toml", bus, [("main", "sdm630", 1), ("gone", "sdm120", 9)])
        result = run_gridtokenx("gateway", "read", "--config", str(with_dead), "--json")
        assert result.returncode == 1
        main, gone = (json.loads(line) for line in result.stdout.splitlines())
    assert main["online"] is True and main["model"] == "sdm630"
    assert (main["import_wh"], main["export_wh"]) == (4821370, 2310580)
    assert isinstance(main["power_w"], int) and main["problems"] == []
    assert main["values"]["voltage_l1"] > 100
    assert gone == {**gone, "meter_id": "gone", "online": False, "import_wh": None, "power_w": None}
    # The first thing asked at first contact is the Eastron identity block (holding 0xFC00).
    assert "bus b unit 9 register 64512: no answer within 500 ms" in gone["error"]


def test_read_rejects_a_bad_config_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nid = "g"\n[[bus]]\nname = "b"\ntype = "tcp"\n[[meter]]\nid = "m"\nmodel = "x"\n')
    result = run_gridtokenx("gateway", "read", "--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert 'bus[0] (name "b").host: required key is missing' in result.stderr
    assert "meter[0] (id \"m\").model: unknown model 'x'" in result.stderr
    assert 'meter[0] (id "m").unit: required key is missing' in result.stderr


def test_scan_over_tcp_identifies_each_model() -> None:
    with meter_sim_process([*SIM_METERS, "--tcp", "127.0.0.1:0"]) as where:
        result = run_gridtokenx(
            "gateway", "scan", "--tcp", f"{where['host']}:{where['port']}", "--units", "1-6", "--timeout", "0.3"
        )
    assert result.returncode == 0, result.stderr
    found = [line.split()[:3] for line in result.stdout.splitlines() if line.startswith("unit")]
    assert found == [["unit", "1", "sdm630"], ["unit", "2", "sdm120"], ["unit", "3", "sunspec"]]
    assert "meter model 203 at 40070" in result.stdout
    assert "found 3 meters in 6 unit ids" in result.stdout


@pytest.mark.serial
def test_scan_over_rtu_on_a_pty_pair() -> None:
    with SerialPair() as (gateway_end, meter_end):
        with meter_sim_process(["--meter", "sdm120:5", "--meter", "sdm630:7", "--serial", meter_end,
                                "--baud", "19200", "--speedup", "0"]):
            result = run_gridtokenx(
                "gateway", "scan", "--serial", gateway_end, "--baud", "19200", "--units", "1-8", "--timeout", "0.15"
            )
    assert result.returncode == 0, result.stderr
    found = [line.split()[:3] for line in result.stdout.splitlines() if line.startswith("unit")]
    assert found == [["unit", "5", "sdm120"], ["unit", "7", "sdm630"]]
    assert "found 2 meters in 8 unit ids" in result.stdout
    # Six silent unit ids: none of pymodbus' own lines ("Repeating....", "No response received ...").
    assert "pymodbus" not in result.stderr and "Repeating" not in result.stderr and result.stderr == ""


def test_scan_finds_nothing_and_says_so() -> None:
    with meter_sim_process(["--meter", "sdm120:1", "--tcp", "127.0.0.1:0", "--speedup", "0"]) as where:
        result = run_gridtokenx(
            "gateway", "scan", "--tcp", f"{where['host']}:{where['port']}", "--units", "10-12", "--timeout", "0.2"
        )
    assert result.returncode == 1
    assert "found 0 meters in 3 unit ids" in result.stdout


def test_scan_argument_errors() -> None:
    result = run_gridtokenx("gateway", "scan", "--tcp", "localhost:1502", "--units", "0-300")
    assert result.returncode == 2 and "unit ids run from 1 to 247" in result.stderr
    result = run_gridtokenx("gateway", "scan", "--tcp", "no-port-here")
    assert result.returncode == 2 and "expected HOST:PORT" in result.stderr
