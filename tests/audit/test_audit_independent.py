"""The audit trusts neither the backend nor the project's own decoders: importing it (and running its
command's module) loads no backend, gateway or program-client module — only the standard library,
solders (Solana's wire formats) and PyNaCl (Ed25519)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_audit_loads_no_backend_gateway_or_program_client() -> None:
    code = ("import json, sys; import audit, audit.cli, audit.verify, audit.source, audit.database, audit.formats; "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    loaded = json.loads(out.stdout)
    assert "audit.verify" in loaded
    forbidden = [m for m in loaded if m.split(".")[0] in ("backend", "gateway", "programs", "meter_sim")
                 or m in ("gridtokenx.reading", "gridtokenx.batch")]
    assert forbidden == []


def test_no_audit_module_names_the_backend_or_the_program_clients() -> None:
    for path in sorted((ROOT / "audit").glob("*.py")):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert stripped.split()[1].split(".")[0] not in ("backend", "gateway", "programs", "meter_sim"), (
                    f"{path.name}: {stripped}")
