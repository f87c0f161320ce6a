"""A real ``gateway run`` process for the daemon tests: meters on meter-sim processes, a real broker,
optional status page, and helpers to read its HTTP resources. A module with its own name, not a
conftest, so it cannot clash with other packages' helpers."""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ackkey import backend_pub
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.processes import Proc, gateway_cmd, start_meter_sim


@dataclass
class Daemon:
    gateway: Proc
    config: Path
    state: Path
    status_port: int | None
    sims: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def get(self, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
        assert self.status_port is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.status_port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def kill_sim(self, name: str) -> None:
        sim = self.sims[name]
        sim.kill()
        sim.wait(5)


def wait_until(what: str, check: Callable[[], Any], timeout: float, log: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{log()[-3000:]}")


def metric(text: str, name: str, labels: str = "") -> float | None:
    prefix = f"{name}{labels} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


@contextmanager
def running_daemon(
    tmp: Path,
    broker: Mosquitto,
    *,
    sims: dict[str, list[int]],
    interval: float = 0.2,
    status: str | None = "",
    env: dict[str, str] | None = None,
    extra: str = "",
) -> Iterator[Daemon]:
    """``sims``: meter-sim name -> unit ids it serves; meter ``m<unit>`` polls each (one TCP bus per sim)."""
    state = tmp / "state"
    keygen = subprocess.run(gateway_cmd("keygen", "--out", str(state / "device.key")), capture_output=True, timeout=60)
    assert keygen.returncode == 0, keygen.stderr
    procs: dict[str, subprocess.Popen[str]] = {}
    buses, meters = [], []
    try:
        for name, units in sims.items():
            proc, port = start_meter_sim(units, tmp / f"sim-{name}.log", speedup=1.0)  # real time: plausible
            procs[name] = proc
            buses.append(
                f'[[bus]]\nname = "{name}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {port}\ntimeout = 0.5\n'
                "connect_timeout = 0.5\n"
            )
            meters += [
                f'[[meter]]\nid = "m{u}"\nmodel = "sdm120"\nunit = {u}\nbus = "{name}"\ninterval = {interval}\n'
                "retries = 0\noffline_after = 2\n"
                for u in units
            ]
        status_port = free_port() if status is not None else None
        config = tmp / "gateway.toml"
        config.write_text(
            '[gateway]\nid = "gw-daemon"\n\n'
            + "\n".join(buses + meters)
            + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nack_timeout_s = 2.0\nack_timeout_max_s = 4.0\n'
            f'reconnect_min_s = 1\nreconnect_max_s = 1\nbackend_key_file = "{backend_pub(tmp)}"\n\n'
            f'[outbox]\npath = "{state}/outbox.db"\n\n[key]\npath = "{state}/device.key"\n'
            + (f'\n[status]\nlisten = "127.0.0.1:{status_port}"\nrefresh_s = 5\n{status}\n' if status_port else "")
            + extra
        )
        gateway = Proc(gateway_cmd("run", "--config", str(config)), tmp / "gateway.log", env=env)
        daemon = Daemon(gateway, config, state, status_port, procs)
        try:
            yield daemon
        finally:
            if gateway.running:
                gateway.kill()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
