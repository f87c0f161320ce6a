"""The README's main command, as CI runs it: ``gridtokenx demo --fast`` end to end on real processes (meter-sim,
two gateways, a broker, ``backend run`` with every role, wallets), under 60 s, failing on any discrepancy
``gridtokenx verify`` reports; then the stopped demo's chain audited again from its state file, the backend's
database checked by hand, and Ctrl-C on a running demo."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo.broker import amqtt_available
from gridtokenx.reading import decode

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "firmware-sim")])}
pytestmark = [pytest.mark.broker, pytest.mark.serial, pytest.mark.chain, pytest.mark.timeout(240)]


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_demo_fast_tells_the_whole_story_and_verify_finds_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gridtokenx", "demo", "--fast", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=180, env=ENV, cwd=ROOT)
    took = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert took < 60, f"demo --fast took {took:.0f} s"
    # The URLs an operator opens, and every act of the story, through the wallets.
    assert len(re.findall(r"gateway gw-\w+ status page\s+http://127\.0\.0\.1:\d+/", out)) == 2
    assert re.search(r"market page\s+http://127\.0\.0\.1:\d+/market/", out)
    for step in (r"Alice buys [\d.]+ kWh of order \w+… for [\d.]+ THBC$", r"Bob buys .* \(the rest of it\)",
                 r"cancels order", r"expired: the backend's crank", r"certified", r"validates it", r"retires it",
                 r"issues 500 THBC to Alice against deposit", r"Alice redeems 100 THBC"):
        assert re.search(step, out, re.M), step
    assert "orders        4 (1 cancelled, 1 expired, 2 filled)" in out
    assert "trades        3," in out and "certificates  1 issued, 1 retired" in out
    assert re.search(r"verify: OK", out) and "DISCREPANCY" not in out

    # The demo has stopped; its chain's state file, audited again by an independent run.
    state = tmp_path / "backend" / "chain"
    again = subprocess.run([sys.executable, "-m", "gridtokenx", "verify", "--chain", str(state), "--json"],
                           capture_output=True, text=True, timeout=60, env=ENV, cwd=ROOT)
    assert again.returncode == 0, again.stdout + again.stderr
    assert '"ok": true' in again.stdout and '"settlements": 0' not in again.stdout

    # The backend's database, read here: every live meter's readings verified, gap-free, none from flat-3.
    with sqlite3.connect(tmp_path / "backend" / "backend.db") as db:
        rows = db.execute("SELECT gateway_id, data FROM readings").fetchall()
        trades = db.execute("SELECT count(*) FROM trades").fetchone()[0]
    by_meter: dict[str, list[int]] = {}
    for gateway, blob in rows:
        reading = decode(bytes(blob))
        assert not reading.meter_error and gateway in ("gw-house", "gw-flats")
        by_meter.setdefault(reading.meter_id, []).append(reading.seq)
    assert set(by_meter) == {"house-main", "pv-inverter", "flat-1", "flat-2"}
    for seqs in by_meter.values():
        assert sorted(seqs) == list(range(min(seqs), min(seqs) + len(seqs)))
    assert trades == 3
    assert re.search(r"flat-3.*offline|offline.*flat-3", (tmp_path / "gw-flats.log").read_text(), re.I)
    for name in ("gw-house", "gw-flats"):
        assert (tmp_path / name / "device.key").stat().st_mode & 0o077 == 0


def test_ctrl_c_stops_the_demo_cleanly_with_its_summary_and_audit(tmp_path: Path) -> None:
    """Also the whole path through the embedded broker (what a machine without Mosquitto gets)."""
    embedded = amqtt_available() or bool(os.environ.get("CI"))  # .ci/setup installs amqtt
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        demo = subprocess.Popen([sys.executable, "-m", "gridtokenx", "demo", "--duration", "300", "--workdir",
                                 str(tmp_path / "work"), "--broker", "embedded" if embedded else "auto"],
                                stdout=out, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while "running for 300 s more" not in log.read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, log.read_text()
            time.sleep(0.5)
        children = _children_of(demo.pid)
        assert len(children) >= 6, children  # broker, backend, two meter-sims, two gateways
        demo.send_signal(signal.SIGINT)
        assert demo.wait(90) == 130, log.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = log.read_text()
    assert "Ctrl-C" in text and "demo: summary" in text and "verify: OK" in text
    assert ("MQTT broker: embedded amqtt" in text) == embedded, text
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert alive == [], f"processes left running: {alive}"
