"""systemd's notify protocol over a real datagram socket, from a real ``gateway run`` process: READY
once the outbox is open and the first poll round ran, WATCHDOG while healthy and not while the main
loop is stuck or the outbox writer makes no progress, STATUS lines that change when a meter dies."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sd_notify import Notifier
from tests.gateway.gw_daemon import running_daemon, wait_until
from tests.support import fixtures
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.modbus]
broker = fixtures.broker


class NotifySocket:
    """What systemd does: a datagram socket that records every message with its arrival time."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="gtx-notify-", dir="/tmp")  # AF_UNIX paths are short
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def times(self, key: str, since: float = 0.0) -> list[float]:
        return [t for t, m in list(self.messages) if key in m and t >= since]

    def statuses(self, since: float = 0.0) -> list[str]:
        return [m["STATUS"] for t, m in list(self.messages) if "STATUS" in m and t >= since]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    ns = NotifySocket()
    yield ns
    ns.close()


def test_notifier_speaks_the_protocol_and_is_silent_without_a_socket(notify: NotifySocket) -> None:
    assert not Notifier.from_environment({}).watchdog()
    n = Notifier.from_environment({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "4000000"})
    assert n.watchdog_s == 4.0
    assert n.ready("2 meters online") and n.status("line one\nline two")
    wait_until("two messages", lambda: len(notify.messages) >= 2, 5, lambda: "")
    first, second = notify.messages[0][1], notify.messages[1][1]
    assert first["READY"] == "1" and first["STATUS"] == "2 meters online" and first["MAINPID"] == str(os.getpid())
    assert second == {"STATUS": "line one line two"}  # one datagram, one line per field
    # WATCHDOG_PID names another process: its watchdog is not ours to feed.
    other = Notifier.from_environment({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"})
    assert other.watchdog_s is None
    other.close()
    n.close()


def test_ready_watchdog_and_status_from_a_real_daemon(tmp_path: Path, broker: Mosquitto, notify: NotifySocket) -> None:
    env = {
        "NOTIFY_SOCKET": notify.path,
        "WATCHDOG_USEC": "3000000",  # 3 s: pings every second; 3 s without progress is a stall
        "GRIDTOKENX_TEST_HOOKS": "1",
        "GRIDTOKENX_TEST_BLOCK_S": "5",
    }
    with running_daemon(tmp_path, broker, sims={"a": [1, 2], "b": [3]}, status=None, env=env) as d:
        log = d.gateway.log
        ready_at = wait_until("READY=1", lambda: notify.times("READY"), 30, log)[0]
        ready = next(m for t, m in notify.messages if "READY" in m)
        # Every meter was polled before READY: the line counts all three as online.
        assert ready["STATUS"].startswith("3 meters online"), ready
        assert (d.state / "outbox.db").exists()
        assert not notify.times("WATCHDOG", 0)[:1] or notify.times("WATCHDOG")[0] >= ready_at

        # Periodic WATCHDOG while healthy.
        time.sleep(4)
        pings = notify.times("WATCHDOG", ready_at)
        assert len(pings) >= 3, pings
        assert max(b - a for a, b in itertools.pairwise(pings)) < 2.5

        # A meter dies: STATUS says so.
        d.kill_sim("b")
        dead = lambda: any("1 offline (m3)" in s for s in notify.statuses())  # noqa: E731
        wait_until("STATUS naming the dead meter", dead, 20, log)
        assert any(s.startswith("2 meters online, 1 offline (m3)") for s in notify.statuses()), notify.statuses()

        # The main loop blocks for 5 s: no WATCHDOG meanwhile, then they resume.
        before = time.monotonic()
        d.gateway.proc.send_signal(signal.SIGUSR1)
        time.sleep(7)
        pings = notify.times("WATCHDOG", before - 1.5)
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert gaps and max(gaps) >= 4.5, gaps
        assert notify.times("WATCHDOG", time.monotonic() - 1.5), "watchdog did not resume after the loop unblocked"

        # The outbox writer stalls while polling goes on: the loop is alive, but no WATCHDOG either.
        # Only a STUCK said after this counts: the blocked loop above was (rightly) reported as STUCK too.
        stall_from = time.monotonic()
        d.gateway.proc.send_signal(signal.SIGUSR2)
        stuck = wait_until("STATUS saying STUCK", lambda: [s for s in notify.statuses(stall_from) if "STUCK" in s],
                           20, log)
        assert "outbox writer" in stuck[0]
        quiet_from = time.monotonic()
        time.sleep(4)
        assert not notify.times("WATCHDOG", quiet_from), "watchdog fed while the writer was stuck"
        assert d.gateway.running
        d.gateway.kill()  # a stuck writer is for systemd to kill; the shutdown deadline is tested elsewhere
