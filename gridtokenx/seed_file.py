"""Ed25519 seed files: one secret in a text file readable only by its owner, made and read one way.

The form (a gateway's device key, the backend's ack key)::

    # <a header line saying what the key is and that it is secret>
    <64 hex digits: the 32-byte seed>

Made with O_EXCL and mode 0600 from the first instant (an existing key is never replaced: it may already
be commissioned somewhere); read only when no one but the owner can read or write it. Errors say which
rule failed (:attr:`SeedFileError.kind`) and never echo the file's content; each caller words them for
its own key and raises its own error types.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

__all__ = ["SeedFileError", "create_seed_file", "parse_key_text", "read_seed_file"]

Kind = Literal["exists", "missing", "not_a_file", "permission", "unreadable", "format"]


class SeedFileError(Exception):
    """``kind`` is the rule that failed; ``mode`` the file's mode for "permission"."""

    def __init__(self, kind: Kind, detail: str = "", mode: int = 0) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind: Kind = kind
        self.detail = detail
        self.mode = mode


def create_seed_file(path: Path, header: str, seed: bytes) -> None:
    """Write ``seed`` under ``header`` into a new file (0600, fsynced with its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SeedFileError("exists") from None
    except OSError as exc:
        raise SeedFileError("unreadable", exc.strerror or str(exc)) from None
    try:
        os.fchmod(fd, 0o600)  # the umask could have removed bits, never added: make it exact
        os.write(fd, f"{header}\n{seed.hex()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_seed_file(path: Path) -> bytes:
    """The 32-byte seed, from a regular file no one but its owner may read or write."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SeedFileError("missing") from None
    except OSError as exc:
        raise SeedFileError("unreadable", exc.strerror or str(exc)) from None
    if not stat.S_ISREG(st.st_mode):
        raise SeedFileError("not_a_file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SeedFileError("permission", mode=mode)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        raise SeedFileError("unreadable") from None
    seed = parse_key_text(text)
    if seed is None:
        raise SeedFileError("format")  # never echo the content: it is (nearly) a secret
    return seed


def parse_key_text(text: str) -> bytes | None:
    """The 32 bytes of a key file's one line of 64 hex digits (``#`` lines are comments), or None. The
    form of seed files and of the ``.pub`` files that carry their public keys."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1:
        return None
    try:
        key = bytes.fromhex(lines[0])
    except ValueError:
        return None
    return key if len(key) == 32 else None
