"""A virtual null-modem cable: two linked ptys made by socat, so the RTU path (pyserial, framing, CRC)
runs for real without hardware. Bytes written to one end come out of the other."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from meter_sim.errors import SerialPairError

READY_LINE = "starting data transfer loop"


class SerialPair:
    """``with SerialPair() as (a, b):`` or ``async with SerialPair() as (a, b):`` yields two device
    paths (symlinks to the ptys) that stay linked until the block ends; socat is then stopped and the
    links removed."""

    def __init__(self, directory: str | Path | None = None, *, timeout: float = 5.0,
                 socat: str = "socat") -> None:
        self._directory = Path(directory) if directory is not None else None
        self._timeout = timeout
        self._socat = socat
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self.device_a = ""
        self.device_b = ""

    # -- lifecycle -------------------------------------------------------------------------------

    def _spawn(self) -> None:
        exe = shutil.which(self._socat)
        if exe is None:
            raise SerialPairError(
                f"{self._socat!r} not found on PATH: the virtual serial pair needs socat "
                "(Debian/Ubuntu: apt-get install socat)"
            )
        base = self._directory
        if base is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="gtx-pty-"))
            base = self._tmp
        base.mkdir(parents=True, exist_ok=True)
        self.device_a = str(base / "ttyA")
        self.device_b = str(base / "ttyB")
        self._log_path = base / "socat.log"
        with open(self._log_path, "wb") as log_file:
            self._proc = subprocess.Popen(
                [exe, "-d", "-d",
                 f"pty,raw,echo=0,link={self.device_a}",
                 f"pty,raw,echo=0,link={self.device_b}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
            )

    def _ready(self) -> bool:
        """True once both links exist and socat is copying; raises if socat died."""
        assert self._proc is not None and self._log_path is not None
        if self._proc.poll() is not None:
            raise SerialPairError(f"socat exited with status {self._proc.returncode}: {self._log()}")
        return (Path(self.device_a).exists() and Path(self.device_b).exists()
                and READY_LINE in self._log())

    def _log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace").strip() if self._log_path else ""
        except OSError:
            return ""

    def _timed_out(self) -> SerialPairError:
        return SerialPairError(f"socat did not create {self.device_a} and {self.device_b} within "
                               f"{self._timeout} s: {self._log()}")

    def open(self) -> tuple[str, str]:
        self._spawn()
        deadline = time.monotonic() + self._timeout
        try:
            while not self._ready():
                if time.monotonic() > deadline:
                    raise self._timed_out()
                time.sleep(0.01)
        except BaseException:
            self.close()
            raise
        return self.device_a, self.device_b

    async def open_async(self) -> tuple[str, str]:
        self._spawn()
        deadline = time.monotonic() + self._timeout
        try:
            while not self._ready():
                if time.monotonic() > deadline:
                    raise self._timed_out()
                await asyncio.sleep(0.01)
        except BaseException:
            self.close()
            raise
        return self.device_a, self.device_b

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        else:
            # socat removes its links when it exits cleanly; after a kill they would dangle.
            for leftover in (self.device_a, self.device_b, self._log_path):
                if leftover:
                    with contextlib.suppress(OSError):
                        Path(leftover).unlink()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- context managers ------------------------------------------------------------------------

    def __enter__(self) -> tuple[str, str]:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> tuple[str, str]:
        return await self.open_async()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()
