"""The shipped unit as systemd judges it: ``systemd-analyze verify`` clean and
``systemd-analyze security --offline=true`` exposure at most 2.5, with serial access, the network,
the state directory and the notify socket still allowed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "gridtokenx-gateway.service"


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing: .ci/setup installs the systemd package")
        pytest.skip("systemd-analyze is not installed")
    return tool


def _installed_copy(tmp_path: Path) -> Path:
    """The unit as install.sh leaves it, except that ExecStart names where gridtokenx is on this
    machine (install.sh links /usr/local/bin/gridtokenx to it; verify checks the file exists)."""
    command = shutil.which("gridtokenx")
    assert command is not None, "the gridtokenx command is not installed (pip install -e .)"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/gridtokenx", command))
    return unit


def test_verify_is_clean(tmp_path: Path) -> None:
    done = subprocess.run(
        [_analyze(), "verify", str(_installed_copy(tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_security_exposure_is_at_most_2_5() -> None:
    done = subprocess.run(
        [_analyze(), "security", "--offline=true", "--no-pager", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    out = done.stdout + done.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out)
    assert match, out
    assert float(match.group(1)) <= 2.5, out


def test_the_hardening_keeps_what_the_daemon_needs() -> None:
    text = UNIT.read_text()
    settings = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert "Type=notify" in settings and "WatchdogSec=30" in settings and "NotifyAccess=main" in settings
    assert "ExecReload=/bin/kill -HUP $MAINPID" in settings
    assert "SupplementaryGroups=dialout" in settings and "DevicePolicy=closed" in settings
    assert {"DeviceAllow=char-ttyUSB rw", "DeviceAllow=char-ttyAMA rw"} <= set(settings)
    assert "PrivateDevices=yes" not in settings  # it would hide the RS-485 adapter
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in settings  # notify socket, broker, page
    assert "StateDirectory=gridtokenx" in settings and "ProtectSystem=strict" in settings
    assert "SystemCallFilter=adjtimex" in settings  # reading the NTP state; CAP_SYS_TIME is gone
    assert "CapabilityBoundingSet=" in settings
    assert "RestartPreventExitStatus=2" in settings


def test_the_stop_timeout_fits_the_daemons_shutdown_deadline() -> None:
    """systemd must not SIGKILL a gateway that is still inside its own shutdown deadline (the outbox would
    lose what it was committing), nor wait much longer than the daemon ever takes."""
    from gateway.cli_run import SHUTDOWN_DEADLINE_S
    from gateway.service import STOP_DEADLINE_S

    match = re.search(r"^TimeoutStopSec=(\d+)s?$", UNIT.read_text(), re.MULTILINE)
    assert match is not None, "the unit sets no TimeoutStopSec"
    timeout_stop_s = int(match.group(1))
    assert STOP_DEADLINE_S <= SHUTDOWN_DEADLINE_S < timeout_stop_s <= SHUTDOWN_DEADLINE_S + 10
