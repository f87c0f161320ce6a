"""The demo's processes: started with the real command lines, each logging to its own file, stopped in reverse
order (SIGTERM, then SIGKILL after a deadline) whatever happens — also on Ctrl-C."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoError", "Proc", "Stack", "cli", "free_port", "wait_port"]


class DemoError(RuntimeError):
    """Something the demo needs did not happen; the message says what and where its log is."""


def cli(*args: str) -> list[str]:
    """The ``gridtokenx`` command as this interpreter runs it."""
    return [sys.executable, "-m", "gridtokenx", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    log_path: Path

    def stop(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return self.popen.returncode

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        return "\n".join(f"    {line}" for line in text[-lines:])


class Stack:
    """Starts processes (each in its own session, so a terminal's Ctrl-C reaches only the demo, which then
    stops them in order) and stops them in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(self, name: str, cmd: list[str], *, ready: str | None = None,
              timeout: float = 30.0) -> re.Match[str] | None:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "a") as log:  # the child keeps its own copy of the descriptor
            popen = subprocess.Popen(cmd, stdout=subprocess.PIPE if ready else log, stderr=log, text=True,
                                     start_new_session=True)
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        if ready is None:
            return None
        assert popen.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = popen.stdout.readline()
            if not line:
                break
            if (match := re.search(ready, line)) is not None:
                return match
        raise DemoError(f"{name} did not become ready:\n{proc.tail()}")

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                raise DemoError(f"{proc.name} exited with {proc.popen.returncode}; its log {proc.log_path}:\n"
                                f"{proc.tail()}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def wait_port(port: int, name: str, stack: Stack, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise DemoError(f"{name} is not listening on port {port}")
