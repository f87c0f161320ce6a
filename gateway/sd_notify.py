"""systemd's notify protocol, spoken directly over the datagram socket (no libsystemd).

``Type=notify`` units get ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace); each
message is one datagram of ``KEY=value`` lines: ``READY=1``, ``RELOADING=1``, ``STOPPING=1``,
``WATCHDOG=1``, ``STATUS=…`` (a line ``systemctl status`` shows). With ``WatchdogSec=`` systemd also sets
``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``, which must be ours) and kills the service when no
``WATCHDOG=1`` arrives within that time; sending at half the period is the documented practice.

Without ``$NOTIFY_SOCKET`` (run by hand, in tests of other things) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._sock: socket.socket | None = None
        self._address: str | bytes | None = None
        self.watchdog_s = watchdog_usec / 1e6 if watchdog_usec else None
        if address:
            # "@name" is Linux's abstract namespace: a leading NUL byte on the wire.
            self._address = b"\0" + address[1:].encode() if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        usec: int | None = None
        raw, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        # WATCHDOG_PID names the process systemd expects pings from: if it is not us, they are not ours.
        if raw and raw.isdigit() and int(raw) > 0 and (not pid or pid == str(os.getpid())):
            usec = int(raw)
        return cls(env.get("NOTIFY_SOCKET"), usec)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        """One datagram with these ``KEY=value`` lines. Never raises: a lost notification must not
        take the daemon down (systemd would then judge it by timeouts, as it should)."""
        if self._sock is None or self._address is None:
            return False
        message = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            self._sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd on %r: %s", self._address, exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1", "STATUS=reloading the configuration")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping: committing what was polled, saying goodbye to the broker")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
