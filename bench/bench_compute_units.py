"""Compute units per instruction of every GridTokenX program, in one table.

    python bench/bench_compute_units.py             # markdown table: program | instruction | CU
    python bench/bench_compute_units.py --check     # also exit 1 if settle_and_mint exceeds 15,000 CU

Runs each ``bench/cu_<program>.py`` script's ``async measure()`` (one fresh LiteSVM each, the committed
.so files, fixed program ids and keys) and prints the results together. Each figure is a whole
transaction's consumption for one top-level instruction, CPIs included (System, SPL Token, and for
settle_and_mint the registry's RecordSettlement); the Ed25519 precompile consumes none. The scripts stay
runnable on their own (``python bench/cu_trading.py``) for one program's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["PROGRAMS", "SETTLE_AND_MINT_TARGET", "Measurement", "load_script", "measure_all", "table"]

BENCH_DIR = Path(__file__).resolve().parent
# Program name as in programs/<name>/ → the script that measures it, in the order the table shows them.
PROGRAMS = {
    "registry": "cu_registry.py",
    "energy_token": "cu_energy_token.py",
    "certificates": "cu_certificates.py",
    "trading": "cu_trading.py",
    "payments": "cu_payments.py",
}
SETTLE_AND_MINT_TARGET = 15_000  # the aim for a full trustless settle-and-mint


@dataclass(frozen=True)
class Measurement:
    program: str
    instruction: str
    compute_units: int


def load_script(filename: str) -> ModuleType:
    """Import a bench script by path: bench/ is a folder of scripts, not a package, so this works from any
    working directory."""
    path = BENCH_DIR / filename
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load bench script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as a normal import would (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


async def measure_all() -> list[Measurement]:
    rows = []
    for program, filename in PROGRAMS.items():
        cu: dict[str, int] = await load_script(filename).measure()
        rows += [Measurement(program, instruction, units) for instruction, units in cu.items()]
    return rows


def table(rows: list[Measurement]) -> str:
    lines = ["| program | instruction | CU |", "|---|---|---:|"]
    lines += [f"| {r.program} | {r.instruction} | {r.compute_units:,} |" for r in rows]
    return "\n".join(lines)


def settle_and_mint_over_target(rows: list[Measurement]) -> list[Measurement]:
    return [r for r in rows if r.instruction.startswith("settle_and_mint") and r.compute_units > SETTLE_AND_MINT_TARGET]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 if any settle_and_mint exceeds {SETTLE_AND_MINT_TARGET:,} CU")
    args = parser.parse_args(argv)
    rows = asyncio.run(measure_all())
    print(table(rows))
    for r in rows:  # one line per figure for bench/run_all.py
        print(f"FIGURE cu.{r.program}.{re.sub(r'[^a-z0-9]+', '_', r.instruction.lower()).strip('_')} "
              f"{r.compute_units} CU")
    over = settle_and_mint_over_target(rows)
    for r in over:
        print(f"{r.program} {r.instruction}: {r.compute_units:,} CU over the {SETTLE_AND_MINT_TARGET:,} target",
              file=sys.stderr)
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
