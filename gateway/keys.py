"""The gateway's Ed25519 device key: created on the device, readable only by its owner, never logged.

File format (text, so a technician can tell what it is without tools)::

    # GridTokenX gateway device key (Ed25519 seed). Secret: keep mode 0600, never copy off the device.
    <64 hex digits: the 32-byte seed>

The public key and a short fingerprint are what get commissioned on the backend; the fingerprint is
the first 8 bytes of SHA-256 over the public key, as four groups of four hex digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey
from pydantic import BaseModel, ConfigDict

from gridtokenx.identity import fingerprint
from gridtokenx.reading import Reading, SignedReading, sign
from gridtokenx.seed_file import SeedFileError, create_seed_file, read_seed_file

__all__ = [
    "DeviceKey",
    "DeviceKeyError",
    "KeyExistsError",
    "KeyFormatError",
    "KeyMissingError",
    "KeyPermissionError",
    "KeySettings",
    "fingerprint",
    "generate_key",
    "load_key",
]

_HEADER = "# GridTokenX gateway device key (Ed25519 seed). Secret: keep mode 0600, never copy off the device."


class KeySettings(BaseModel):
    """``[key]`` in the gateway configuration."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Path("/var/lib/gridtokenx/device.key")
    # The boot-epoch file (high bits of every sequence number) lives beside the key by default: it
    # must survive the loss of the outbox database, and it belongs to this identity.
    epoch_path: Path | None = None

    def resolved_epoch_path(self) -> Path:
        return self.epoch_path if self.epoch_path is not None else self.path.with_name(self.path.name + ".epoch")


class DeviceKeyError(Exception):
    """Base of the device-key errors; the message names the file and what to do."""


class KeyMissingError(DeviceKeyError):
    pass


class KeyExistsError(DeviceKeyError):
    pass


class KeyPermissionError(DeviceKeyError):
    pass


class KeyFormatError(DeviceKeyError):
    pass


@dataclass(frozen=True)
class DeviceKey:
    path: Path
    _signing_key: SigningKey

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, reading: Reading) -> SignedReading:
        return sign(reading, self._signing_key)

    def __repr__(self) -> str:  # never let the seed reach a log line through a repr
        return f"DeviceKey(path={str(self.path)!r}, fingerprint={self.fingerprint!r})"


def generate_key(path: Path) -> DeviceKey:
    """Create a new key file with mode 0600; refuses to overwrite an existing one."""
    path = Path(path)
    key = SigningKey.generate()
    try:
        create_seed_file(path, _HEADER, bytes(key))
    except SeedFileError as exc:
        if exc.kind == "exists":
            raise KeyExistsError(
                f"key file {path} already exists: refusing to replace a device identity "
                "(move it away first if you really mean to re-key this gateway)"
            ) from None
        raise DeviceKeyError(f"cannot create key file {path}: {exc.detail}") from None
    return DeviceKey(path, key)


def load_key(path: Path) -> DeviceKey:
    """Load the key, refusing a file that anyone but its owner can read or write."""
    path = Path(path)
    try:
        seed = read_seed_file(path)
    except SeedFileError as exc:
        raise _load_error(path, exc) from None
    return DeviceKey(path, SigningKey(seed))


def _load_error(path: Path, exc: SeedFileError) -> DeviceKeyError:
    if exc.kind == "missing":
        return KeyMissingError(
            f"key file {path} does not exist: create it with `gridtokenx gateway keygen --out {path}`"
        )
    if exc.kind == "permission":
        return KeyPermissionError(
            f"key file {path} has mode {exc.mode:04o}: a device key must be readable only by its owner "
            f"(others could sign readings as this gateway). Fix with: chmod 600 {path}"
        )
    if exc.kind == "not_a_file":
        return KeyFormatError(f"key file {path} is not a regular file")
    if exc.kind == "format":
        return KeyFormatError(f"key file {path} does not hold one 64-hex-digit Ed25519 seed")
    return KeyFormatError(f"cannot read key file {path}{': ' + exc.detail if exc.detail else ''}")
