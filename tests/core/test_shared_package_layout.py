"""gridtokenx/ holds what every role shares, so it must not import the gateway or the backend: importing every
one of its modules loads neither (the demo, which needs both, is the top-level package demo/)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import gridtokenx

ROOT = Path(__file__).resolve().parents[2]


def test_no_gridtokenx_module_imports_the_gateway_or_the_backend() -> None:
    modules = sorted(f"gridtokenx.{m.name}" for m in pkgutil.iter_modules(gridtokenx.__path__) if m.name != "__main__")
    assert "gridtokenx.cli" in modules and "gridtokenx.demo" not in modules
    probe = (f"import importlib, json, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & {"gateway", "backend", "demo", "meter_sim"}, sorted(loaded & {"gateway", "backend"})
