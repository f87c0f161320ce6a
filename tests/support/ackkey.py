"""The backend ack key of the tests: one fixed key, written where a test's processes expect it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nacl.signing import SigningKey

from backend.ingest.ack_key import AckKey, public_key_path

__all__ = ["backend_pub", "test_ack_key", "write_ack_key"]

_SEED = hashlib.sha256(b"gridtokenx test backend ack key").digest()


def test_ack_key() -> AckKey:
    return AckKey(Path("test-ack.key"), SigningKey(_SEED))


test_ack_key.__test__ = False  # type: ignore[attr-defined]  # not a test, for pytest's collector


def write_ack_key(directory: Path) -> Path:
    """The key file (0600) and its .pub in ``directory``; returns the key file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "backend-ack.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# test ack key\n{_SEED.hex()}\n")
        public_key_path(path).write_text(f"{test_ack_key().public_key.hex()}\n")
    return path


def backend_pub(directory: Path) -> Path:
    """The .pub file gateways are configured with (``[mqtt] backend_key_file``)."""
    return public_key_path(write_ack_key(directory))
