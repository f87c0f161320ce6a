"""A real Mosquitto broker on a free port, started by the test: stop, restart (same port), kill.

Supports a password file, an ACL file and a TLS listener (with a test PKI made by :func:`make_pki`).
Persistence is on and lives in the broker's own directory, so a stop/start keeps persistent sessions
and their queued messages, as a production broker would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mosquitto", "Pki", "free_port", "make_pki"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate (openssl CLI)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def sh(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, cwd=d)

    sh(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=gridtokenx test CA",
    )
    for name, cn, ext in (
        ("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("client", "gw-tls", "extendedKeyUsage=clientAuth"),
    ):
        sh(
            "openssl",
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={cn}",
        )
        (d / f"{name}.ext").write_text(ext + "\n")
        sh(
            "openssl",
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


class Mosquitto:
    def __init__(
        self,
        workdir: Path,
        *,
        passwords: dict[str, str] | None = None,
        acl: str | None = None,
        tls: Pki | None = None,
        require_client_cert: bool = False,
        extra_conf: str = "",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1",
            "log_type error\nlog_type warning\nlog_type notice",
            # As docs/mqtt.md recommends: no Nagle delay on the broker's small packets.
            "set_tcp_nodelay true",
            f"log_dest file {self.log_path}",
        ]
        if os.geteuid() == 0:
            # Run as root, mosquitto would switch to the "mosquitto" user, who cannot read a test's
            # temporary directory.
            lines.append("user root")
        if passwords is not None:
            pwfile = self.workdir / "passwd"
            pwfile.write_text("")
            for user, password in passwords.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, password], check=True, capture_output=True)
            pwfile.chmod(0o600)
            lines.append(f"allow_anonymous false\npassword_file {pwfile}")
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            aclfile = self.workdir / "acl"
            aclfile.write_text(acl)
            aclfile.chmod(0o600)
            lines.append(f"acl_file {aclfile}")
        if tls is not None:
            lines.append(f"cafile {tls.ca}\ncertfile {tls.server_cert}\nkeyfile {tls.server_key}")
            lines.append(f"require_certificate {'true' if require_client_cert else 'false'}")
        lines.append(extra_conf)
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.log_path.read_text() if self.log_path.exists() else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}{log[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM: the broker saves its persistent state and exits."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close_pipes()

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class BrokerOutage:
    """A bench's one broker outage: stopped ``seconds`` long from ``at`` seconds into the run (none when
    ``seconds`` is 0). Call :meth:`step` with the elapsed time as the run goes; it says what it did."""

    def __init__(self, broker: Mosquitto, at: float, seconds: float, say: Callable[[str], None] = print) -> None:
        self.broker, self.at, self.seconds, self.say = broker, at, seconds, say
        self.done = not seconds

    def step(self, elapsed: float) -> None:
        if self.done:
            return
        if elapsed >= self.at and self.broker.running:
            self.say(f"  {elapsed:6.0f} s: broker stopped for {self.seconds:g} s (backlog builds up)")
            self.broker.stop()
        elif not self.broker.running and elapsed >= self.at + self.seconds:
            self.broker.start()
            self.done = True
            self.say(f"  {elapsed:6.0f} s: broker back")
