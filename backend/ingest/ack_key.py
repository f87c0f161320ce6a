"""The backend's ack key: an Ed25519 key that signs every ack, so that only the backend can make a
gateway delete readings from its outbox (docs/mqtt.md, "Ack message").

Files (text, the same form as a gateway's device key)::

    backend-ack.key      # GridTokenX backend ack key (Ed25519 seed). Secret: mode 0600.
                         <64 hex digits>
    backend-ack.key.pub  # GridTokenX backend ack public key: [mqtt] backend_key_file on each gateway.
                         <64 hex digits>

Every ingest process of one backend uses the same key file; gateways are commissioned with the
public one. The seed is never logged, printed or put in a repr.
"""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from gridtokenx.identity import fingerprint
from gridtokenx.seed_file import SeedFileError, create_seed_file, read_seed_file

__all__ = ["AckKey", "AckKeyError", "generate_ack_key", "load_ack_key"]

_HEADER = "# GridTokenX backend ack key (Ed25519 seed). Secret: keep mode 0600; gateways get the .pub file."
_PUB_HEADER = "# GridTokenX backend ack public key: give this file to each gateway as [mqtt] backend_key_file."


class AckKeyError(Exception):
    """The ack key file is missing, unreadable, too open or malformed; the message says what to do."""


class AckKey:
    """Signs acks. Holds the seed; its repr shows only the public key's fingerprint."""

    __slots__ = ("_key", "path", "public_key")

    def __init__(self, path: Path, key: SigningKey) -> None:
        self.path = path
        self._key = key
        self.public_key = bytes(key.verify_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def __repr__(self) -> str:
        return f"AckKey(path={str(self.path)!r}, fingerprint={self.fingerprint!r})"


def public_key_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def generate_ack_key(path: Path) -> AckKey:
    """Create the key (mode 0600 from the start; never replaces one) and its ``.pub`` file."""
    path = Path(path)
    key = SigningKey.generate()
    try:
        create_seed_file(path, _HEADER, bytes(key))
    except SeedFileError as exc:
        if exc.kind == "exists":
            raise AckKeyError(
                f"ack key {path} already exists: refusing to replace it (gateways are commissioned with its public key)"
            ) from None
        raise AckKeyError(f"cannot create ack key {path}: {exc.detail}") from None
    ack_key = AckKey(path, key)
    public_key_path(path).write_text(f"{_PUB_HEADER}\n{ack_key.public_key.hex()}\n")
    return ack_key


def load_ack_key(path: Path) -> AckKey:
    """Load the key, refusing a file that anyone but its owner can read or write."""
    path = Path(path)
    try:
        seed = read_seed_file(path)
    except SeedFileError as exc:
        raise AckKeyError(_load_problem(path, exc)) from None
    return AckKey(path, SigningKey(seed))


def _load_problem(path: Path, exc: SeedFileError) -> str:
    if exc.kind == "missing":
        return f"ack key {path} does not exist: create it with `gridtokenx backend ack-keygen --out {path}`"
    if exc.kind == "permission":
        return (f"ack key {path} has mode {exc.mode:04o}: it must be readable only by its owner (anyone who can "
                f"read it can make gateways delete readings). Fix with: chmod 600 {path}")
    if exc.kind == "not_a_file":
        return f"ack key {path} is not a regular file"
    if exc.kind == "format":
        return f"ack key {path} does not hold one 64-hex-digit Ed25519 seed"
    return f"cannot read ack key {path}{': ' + exc.detail if exc.detail else ''}"
