"""Where the built programs are: ``programs/<name>/<name>.so``, committed and shipped as package data."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ProgramNotBuilt", "program_so", "program_so_path"]

_PROGRAMS_DIR = Path(__file__).resolve().parent.parent


class ProgramNotBuilt(FileNotFoundError):
    """The .so is missing: run `gridtokenx programs build NAME`."""


def program_so_path(name: str) -> Path:
    return _PROGRAMS_DIR / name / f"{name}.so"


def program_so(name: str) -> bytes:
    """The program's SBPF shared object, ready for LiteSVMChain.add_program or deploy_upgradeable."""
    path = program_so_path(name)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ProgramNotBuilt(f"{path} is missing: run `gridtokenx programs build {name}`") from exc
