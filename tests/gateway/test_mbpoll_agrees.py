"""An independent Modbus client agrees with the gateway: mbpoll (libmodbus, no code shared with pymodbus)
reads the SDM630 import-energy register from meter-sim, and the gateway reports the same energy."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from gwtest_helpers import meter_sim_process, run_gridtokenx

pytestmark = [pytest.mark.modbus, pytest.mark.tool]


def _mbpoll(port: str, *type_args: str) -> dict[int, str]:
    if shutil.which("mbpoll") is None:
        pytest.fail("mbpoll is not installed: apt-get install mbpoll (bash .ci/setup does)")
    out = subprocess.run(
        # -r 73 is mbpoll's 1-based reference for address 0x0048; -B: high word first, as Eastron sends it
        ["mbpoll", "-m", "tcp", "-p", port, "-a", "1", *type_args, "-r", "73", "-c", "2", "-1", "127.0.0.1"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return {int(k.strip("[] ")): v.strip() for k, v in
            (line.split(":", 1) for line in out.stdout.splitlines() if line.startswith("["))}


def test_mbpoll_and_gateway_read_the_same_import_energy(tmp_path: Path) -> None:
    # speedup 0: the counters stand still, so two clients reading at different moments must agree exactly.
    with meter_sim_process(["--model", "sdm630", "--unit", "1", "--tcp", "127.0.0.1:0", "--speedup", "0"]) as where:
        port = where["port"]
        as_float = _mbpoll(port, "-t", "3:float", "-B")
        as_hex = _mbpoll(port, "-t", "3:hex")
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[gateway]\nid = "gw-mbpoll"\n\n[[bus]]\nname = "lan"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {port}\n\n'
            '[[meter]]\nid = "sdm630-1"\nmodel = "sdm630"\nunit = 1\nbus = "lan"\n'
        )
        read = run_gridtokenx("gateway", "read", "--config", str(config), "--json")
    assert read.returncode == 0, read.stdout + read.stderr
    (reported,) = [json.loads(line) for line in read.stdout.splitlines() if line.strip()]

    # The raw registers, decoded here with struct (neither pymodbus nor the gateway's decoder):
    words = [int(as_hex[73], 16), int(as_hex[74], 16)]
    import_kwh = struct.unpack(">f", struct.pack(">HH", *words))[0]
    expected_wh = int((Decimal(import_kwh) * 1000).to_integral_value(ROUND_HALF_EVEN))
    assert reported["import_wh"] == expected_wh
    assert expected_wh > 1_000_000  # a meter a few years old, not an empty register read as 0
    # mbpoll's own float decoding prints 6 significant digits; it agrees to that precision.
    assert float(as_float[73]) * 1000 == pytest.approx(reported["import_wh"], rel=1e-6)
