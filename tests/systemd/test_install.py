"""``systemd/install.sh`` in a scratch root, twice: user in dialout, directories and modes, a device
key made once and kept, the example configuration copied once and an edited one kept, the unit
enabled."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gateway.keys import load_key

SCRIPT = Path(__file__).resolve().parents[2] / "systemd" / "install.sh"


def _install(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), "--root", str(root)], capture_output=True, text=True, timeout=120)


def test_install_into_a_scratch_root_is_idempotent(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("install.sh creates users and owns files to them: it runs as root")
    if shutil.which("systemd-sysusers") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-sysusers is missing: .ci/setup installs the systemd package")
        pytest.skip("systemd-sysusers is not installed")
    root = tmp_path / "root"
    first = _install(root)
    assert first.returncode == 0, first.stdout + first.stderr

    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    assert passwd["gridtokenx"][6] == "/usr/sbin/nologin"
    uid, gid = int(passwd["gridtokenx"][2]), int(passwd["gridtokenx"][3])
    assert "gridtokenx" in groups["dialout"][3].split(",")

    state, etc = root / "var/lib/gridtokenx", root / "etc/gridtokenx"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700 and state.stat().st_uid == uid
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750 and etc.stat().st_gid == gid
    key_file = state / "device.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.stat().st_uid == uid
    fingerprint = load_key(key_file).fingerprint
    assert fingerprint in first.stdout  # printed for commissioning; the seed never
    assert key_file.read_text().split()[-1] not in first.stdout + first.stderr
    config = etc / "gateway.toml"
    assert config.read_text() == (SCRIPT.parent / "gateway.example.toml").read_text()
    unit = root / "etc/systemd/system/gridtokenx-gateway.service"
    assert unit.read_text() == (SCRIPT.parent / "gridtokenx-gateway.service").read_text()
    wanted = root / "etc/systemd/system/multi-user.target.wants/gridtokenx-gateway.service"
    assert wanted.is_symlink()
    assert (root / "usr/local/bin/gridtokenx").exists()

    config.write_text(config.read_text().replace("gw-bangkok-01", "gw-edited"))
    os.chmod(state, 0o755)  # drifted: the second run puts it right
    second = _install(root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "device key exists, kept" in second.stdout and "configuration exists, kept" in second.stdout
    assert load_key(key_file).fingerprint == fingerprint
    assert "gw-edited" in config.read_text()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert [ln for ln in (root / "etc/passwd").read_text().splitlines() if ln.startswith("gridtokenx:")] == [
        ":".join(passwd["gridtokenx"])
    ]
    assert wanted.is_symlink()
