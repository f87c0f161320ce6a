"""`gridtokenx backend` refuses what it cannot use with exit 2 and one line (systemd does not restart on
2), and makes the ack key as a secret: mode 0600, never printed."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.support.processes import backend_cmd


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(backend_cmd(*args), capture_output=True, text=True, timeout=60)


def test_an_unsupported_database_url_is_a_configuration_error(tmp_path: Path) -> None:
    done = _run("run", "--database", "mysql://user:secret@db/gridtokenx", "--ack-key", str(tmp_path / "k"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "must start with postgresql:// or sqlite:///" in done.stderr
    assert "secret" not in done.stderr  # the URL's password is redacted


def test_ack_keygen_makes_a_0600_key_and_prints_only_the_public_half(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "backend-ack.key"
    done = _run("ack-keygen", "--out", str(path))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    seed = next(ln for ln in path.read_text().splitlines() if not ln.startswith("#"))
    public = next(ln for ln in Path(f"{path}.pub").read_text().splitlines() if not ln.startswith("#"))
    assert len(seed) == 64 and len(public) == 64
    assert seed not in done.stdout + done.stderr and public in done.stdout
    again = _run("ack-keygen", "--out", str(path))
    assert again.returncode == 2 and "refusing to replace" in again.stderr
    assert next(ln for ln in path.read_text().splitlines() if not ln.startswith("#")) == seed


def test_run_refuses_a_missing_or_readable_ack_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/b.db"
    missing = _run("run", "--database", url, "--ack-key", str(tmp_path / "nope.key"), "--mqtt-port", "1")
    assert missing.returncode == 2 and "ack-keygen" in missing.stderr and "Traceback" not in missing.stderr
    key = tmp_path / "ack.key"
    assert _run("ack-keygen", "--out", str(key)).returncode == 0
    key.chmod(0o644)
    loose = _run("run", "--database", url, "--ack-key", str(key), "--mqtt-port", "1")
    assert loose.returncode == 2 and f"chmod 600 {key}" in loose.stderr and "Traceback" not in loose.stderr
