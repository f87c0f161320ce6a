"""The socat pty pair: bytes cross in both directions, and everything is cleaned up afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import serial
from meter_sim import SerialPair, SerialPairError

pytestmark = pytest.mark.serial


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_bytes_cross_both_ways_and_socat_is_stopped_on_exit() -> None:
    pair = SerialPair()
    with pair as (a, b):
        pid = pair.pid
        assert pid is not None and _alive(pid)
        with serial.Serial(a, 9600, timeout=1.0) as end_a, serial.Serial(b, 9600, timeout=1.0) as end_b:
            end_a.write(b"\x01\x04\x00\x48\x00\x02\xf1\xdd")
            assert end_b.read(8) == b"\x01\x04\x00\x48\x00\x02\xf1\xdd"
            end_b.write(bytes(range(256)))  # raw: no byte is translated or swallowed
            assert end_a.read(256) == bytes(range(256))
    assert not _alive(pid)
    assert not Path(a).exists() and not Path(b).exists()


def _are_pty_links(*paths: str) -> bool:
    return all(Path(p).is_symlink() and os.path.realpath(p).startswith("/dev/pts/") for p in paths)


async def test_async_form_and_a_chosen_directory(tmp_path: Path) -> None:
    async with SerialPair(tmp_path / "bus") as (a, b):
        assert Path(a).parent == tmp_path / "bus"
        assert _are_pty_links(a, b)
    assert not _are_pty_links(a) and not _are_pty_links(b)


def test_missing_socat_is_a_clear_error() -> None:
    with pytest.raises(SerialPairError, match=r"socat.*not found.*apt-get install socat"), \
            SerialPair(socat="socat-does-not-exist"):
        pass
