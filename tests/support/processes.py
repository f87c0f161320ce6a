"""The real commands as separate processes: meter-sim, ``gateway run``, ``backend run``.

``gateway run`` and ``gateway keygen`` are reached through ``gridtokenx gateway …`` once registered in
gateway/cli.py, else through their modules (``python -m gateway.cli_run``) — the same code either way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.cli import SUBCOMMANDS as GATEWAY_SUBCOMMANDS
from tests.support.ackkey import backend_pub, write_ack_key

__all__ = ["Proc", "backend_cmd", "gateway_cmd", "start_meter_sim", "write_backend_config", "write_gateway_config"]


def gateway_cmd(action: str, *args: str) -> list[str]:
    if action in GATEWAY_SUBCOMMANDS:
        return [sys.executable, "-m", "gridtokenx", "gateway", action, *args]
    return [sys.executable, "-m", f"gateway.cli_{action}", *args]


def backend_cmd(action: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "gridtokenx", "backend", action, *args]


class Proc:
    """A child process whose stderr goes to a file (read it when a test fails)."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "ab")
        full_env = {**os.environ, "GRIDTOKENX_LOG_LEVEL": "INFO", **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=self._log, env=full_env)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 15.0) -> int:
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if not self._log.closed:
                self._log.close()

    def kill(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        if not self._log.closed:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop_meter_sim(sim: subprocess.Popen[str]) -> None:
    """Kill a meter-sim started by :func:`start_meter_sim` and close its output pipe (idempotent)."""
    sim.kill()
    sim.wait(5)
    if sim.stdout is not None:
        sim.stdout.close()


def start_meter_sim(
    units: list[int], log_path: Path, model: str = "sdm120", speedup: float = 60.0, timeout: float = 20.0
) -> tuple[subprocess.Popen[str], int]:
    cmd = [
        sys.executable,
        "-m",
        "gridtokenx",
        "meter-sim",
        *(arg for u in units for arg in ("--meter", f"{model}:{u}")),
        "--tcp",
        "127.0.0.1:0",
        "--speedup",
        str(speedup),
    ]
    err = open(log_path, "ab")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    err.close()
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"ready: tcp [\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError(f"meter-sim did not become ready: {log_path.read_text()[-2000:]}")


def write_gateway_config(
    path: Path,
    *,
    gateway_id: str,
    sim_port: int,
    units: list[int],
    broker_port: int,
    state: Path,
    interval: float = 0.1,
    extra_mqtt: str = "",
) -> Path:
    meters = "".join(
        f'[[meter]]\nid = "m{u}"\nmodel = "sdm120"\nunit = {u}\nbus = "sim"\ninterval = {interval}\n\n' for u in units
    )
    path.write_text(
        f'[gateway]\nid = "{gateway_id}"\n\n'
        f'[[bus]]\nname = "sim"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {sim_port}\ntimeout = 1.0\n\n'
        f"{meters}"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nack_timeout_s = 2.0\nack_timeout_max_s = 4.0\n'
        f'reconnect_max_s = 1\nbatch_size = 200\nbackend_key_file = "{backend_pub(path.parent)}"\n{extra_mqtt}\n'
        f'[outbox]\npath = "{state}/outbox.db"\n\n'
        f'[key]\npath = "{state}/device.key"\n'
    )
    return path


def write_backend_config(
    path: Path, *, url: str, broker_port: int, instance: int = 0, shared_group: str | None = None, extra: str = ""
) -> Path:
    share = f'shared_group = "{shared_group}"\n' if shared_group else ""
    path.write_text(
        f'[database]\nurl = "{url}"\n\n[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nreconnect_max_s = 1\n'
        f'client_id = "backend-{broker_port}-{instance}"\nack_key_file = "{write_ack_key(path.parent)}"\n{share}'
        f"{extra}"
    )
    return path
