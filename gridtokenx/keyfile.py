"""Solana keypair files: a JSON array of the 64 secret-key bytes (the Solana CLI's format), mode 0600.

Used by ``gridtokenx wallet`` (the user's key, which never leaves the machine) and by the backend for its
fee payer. A file readable by group or others is refused, as ssh refuses such a key.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solders.keypair import Keypair

__all__ = ["KeyfileError", "load_keypair_file", "write_keypair_file"]


class KeyfileError(Exception):
    pass


def write_keypair_file(path: Path, keypair: Keypair) -> None:
    """Create ``path`` (0600); an existing file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyfileError(f"{path} already exists; not overwriting a key") from None
    with os.fdopen(fd, "w") as out:
        json.dump(list(bytes(keypair)), out)
        out.write("\n")


def load_keypair_file(path: Path) -> Keypair:
    from solders.keypair import Keypair

    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyfileError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise KeyfileError(f"cannot read keypair file {path}: {exc.strerror}") from None
    except json.JSONDecodeError:
        raise KeyfileError(f"{path} is not a keypair file (a JSON array of 64 numbers)") from None
    if not isinstance(raw, list) or len(raw) != 64 or not all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        raise KeyfileError(f"{path} is not a keypair file (a JSON array of 64 numbers)")
    try:
        return Keypair.from_bytes(bytes(raw))
    except ValueError:
        raise KeyfileError(f"{path}: the public half does not match the secret key") from None
