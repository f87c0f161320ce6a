"""The ``gridtokenx`` command: subcommands load only their own libraries, and usage errors are clear."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["solders", "solana", "asyncpg", "paho", "pymodbus", "aiosqlite", "elftools"]


def _modules_loaded_by(argv: list[str]) -> set[str]:
    probe = (
        "import json, sys\n"
        "from gridtokenx.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["--help"], set()),
        (["gateway", "read", "--help"], {"pymodbus"}),
        (["gateway", "keygen", "--help"], set()),
        (["programs", "--help"], {"elftools", "solders"}),
    ],
)
def test_a_subcommand_imports_only_what_it_needs(argv: list[str], allowed: set[str]) -> None:
    loaded = _modules_loaded_by(argv)
    assert loaded <= allowed, f"{argv} imported {sorted(loaded - allowed)}"
    # The gateway never pulls in the chain or the backend's database driver.
    assert not loaded & {"solana", "asyncpg"}


def test_unknown_subcommand_is_a_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "gridtokenx", "mint-money"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "invalid choice: 'mint-money'" in out.stderr
    assert "meter-sim" in out.stderr  # the usage lists the real subcommands
