"""Build the on-chain programs: ``programs/<name>/src/*.c`` → clang-19 → our linker → ``programs/<name>/<name>.so``.

The committed ``.so`` files are the build output, so the build must be reproducible byte for byte on any
checkout: sources are compiled in sorted order with paths relative to the repository, without debug info
and with ``-ffile-prefix-map``, and the linker writes nothing that depends on time or location.
``check_programs`` rebuilds into a temporary directory and compares with what is committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from programs.toolchain.linker import LinkError, link

__all__ = [
    "CFLAGS",
    "PROGRAMS_DIR",
    "BuildError",
    "BuildResult",
    "build_program",
    "check_programs",
    "compile_objects",
    "find_clang",
    "list_programs",
    "so_path",
]

PROGRAMS_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PROGRAMS_DIR.parent
INCLUDE_DIR = PROGRAMS_DIR / "include"
CLANG = "clang-19"  # another clang version may emit other bytes, and --check would then fail

# -mcpu=v2 and never v3/v4 or +alu32: SBPF v0 sign-extends 32-bit ALU results and rejects JMP32.
# -bpf-stack-size=4096: Solana frames are 4 KiB (clang's BPF default is 512 B).
CFLAGS = (
    "-target", "bpf", "-mcpu=v2", "-O2", "-std=c11",
    "-ffreestanding", "-fno-builtin", "-nostdlib", "-fno-stack-protector",
    "-mllvm", "-bpf-stack-size=4096",
    "-g0", "-Wall", "-Wextra", "-Werror",
)


class BuildError(Exception):
    """A program could not be built; the message names the program and the failing step."""


@dataclass(frozen=True)
class BuildResult:
    name: str
    path: Path
    size: int
    changed: bool  # differs from what was on disk (or in the committed tree, for a check)


def find_clang() -> str:
    """The clang to use: $GRIDTOKENX_CLANG or clang-19 on PATH."""
    wanted = os.environ.get("GRIDTOKENX_CLANG", CLANG)
    found = shutil.which(wanted)
    if found is None:
        raise BuildError(
            f"{wanted} not found on PATH; the programs are built with Debian's clang-19: "
            "apt-get install clang-19 lld-19 llvm-19"
        )
    return found


def list_programs(root: Path = PROGRAMS_DIR) -> list[str]:
    """Every folder of ``root`` with C sources in ``src/``, sorted."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / "src").glob("*.c")))


def so_path(name: str, root: Path = PROGRAMS_DIR) -> Path:
    return root / name / f"{name}.so"


def _sources(name: str, root: Path) -> list[Path]:
    sources = sorted((root / name / "src").glob("*.c"))
    if not sources:
        raise BuildError(f"program {name!r}: no C sources in {root / name / 'src'}")
    return sources


def compile_objects(name: str, workdir: Path, root: Path = PROGRAMS_DIR) -> list[Path]:
    """Compile one program's sources into ``workdir``; returns the objects in link order."""
    clang = find_clang()
    base = root.parent
    objects = []
    for src in _sources(name, root):
        obj = workdir / f"{src.stem}.o"
        cmd = [
            clang, *CFLAGS,
            f"-ffile-prefix-map={base}/=",
            "-I", os.path.relpath(root / "include", base),
            "-c", os.path.relpath(src, base),
            "-o", str(obj),
        ]
        proc = subprocess.run(cmd, cwd=base, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"program {name!r}: {src.name} does not compile:\n{proc.stderr.strip()}")
        objects.append(obj)
    return objects


def build_image(name: str, root: Path = PROGRAMS_DIR) -> bytes:
    """Compile and link one program; returns the .so bytes."""
    with tempfile.TemporaryDirectory(prefix=f"gtx-build-{name}-") as tmp:
        objects = compile_objects(name, Path(tmp), root)
        try:
            return link([(f"{name}/src/{o.stem}.c", o.read_bytes()) for o in objects])
        except LinkError as exc:
            raise BuildError(f"program {name!r}: {exc}") from exc


def build_program(name: str, root: Path = PROGRAMS_DIR) -> BuildResult:
    """Build ``programs/<name>/<name>.so`` in place."""
    image = build_image(name, root)
    out = so_path(name, root)
    changed = not out.exists() or out.read_bytes() != image
    if changed:
        out.write_bytes(image)
    return BuildResult(name, out, len(image), changed)


def check_programs(names: list[str], root: Path = PROGRAMS_DIR) -> list[BuildResult]:
    """Rebuild into a temporary directory and compare with the .so files on disk (nothing is written)."""
    results = []
    for name in names:
        image = build_image(name, root)
        committed = so_path(name, root)
        changed = not committed.exists() or committed.read_bytes() != image
        results.append(BuildResult(name, committed, len(image), changed))
    return results
