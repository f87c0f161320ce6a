"""The README's main command runs end to end: real meter-sim, gateway, Mosquitto and backend processes."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gridtokenx.reading import decode


@pytest.mark.broker
@pytest.mark.serial
def test_demo_delivers_every_meter_and_skips_the_dead_one(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gridtokenx", "demo",
         "--duration", "6", "--interval", "0.5", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo: OK" in proc.stdout
    # The chain step minted GRID from the signed readings and a consumer bought some of it.
    minted = [float(m) for m in re.findall(r"→ ([\d.]+) kWh GRID minted", proc.stdout)]
    assert len(minted) == 4 and max(minted) > 0, proc.stdout
    assert re.search(r"TradeExecuted: [\d.]+ kWh for [\d.]+ THBC", proc.stdout), proc.stdout
    # Check the backend's database ourselves rather than trusting the demo's own verdict.
    with sqlite3.connect(tmp_path / "backend.db") as db:
        blobs = [row[0] for row in db.execute("SELECT data FROM readings")]
    by_meter: dict[str, list[int]] = {}
    for blob in blobs:
        reading = decode(bytes(blob))
        assert not reading.meter_error, reading  # time-compressed counters must not look implausible
        by_meter.setdefault(reading.meter_id, []).append(reading.seq)
    assert set(by_meter) == {"house-main", "pv-inverter", "flat-1", "flat-2"}
    for seqs in by_meter.values():
        assert len(seqs) >= 3
        assert sorted(seqs) == list(range(min(seqs), min(seqs) + len(seqs)))
    assert re.search(r"flat-3.*offline|offline.*flat-3", (tmp_path / "gateway.log").read_text(), re.I)
    assert (tmp_path / "gateway" / "device.key").stat().st_mode & 0o077 == 0
