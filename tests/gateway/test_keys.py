"""The device key: created 0600, loaded only when private, never echoed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from nacl.signing import VerifyKey

from gateway.keys import (
    KeyExistsError,
    KeyFormatError,
    KeyMissingError,
    KeyPermissionError,
    KeySettings,
    fingerprint,
    generate_key,
    load_key,
)
from gridtokenx.reading import Reading, verify


def test_generate_creates_owner_only_file_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "device.key"
    key = generate_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_key(path)
    assert loaded.public_key == key.public_key
    assert len(loaded.public_key) == 32
    assert loaded.fingerprint == fingerprint(key.public_key)
    assert len(loaded.fingerprint) == 19 and loaded.fingerprint.count(":") == 3


def test_signatures_verify_with_the_public_key(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "k")
    reading = Reading(meter_id="m1", seq=7, timestamp_ms=1, import_wh=2, export_wh=3)
    signed = key.sign(reading)
    assert verify(signed.data, signed.signature, key.public_key) == reading
    VerifyKey(key.public_key).verify(signed.data, signed.signature)


def test_generate_refuses_to_replace_an_identity(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = generate_key(path)
    with pytest.raises(KeyExistsError, match="already exists"):
        generate_key(path)
    assert load_key(path).public_key == first.public_key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_a_key_others_can_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    generate_key(path)
    os.chmod(path, mode)
    with pytest.raises(KeyPermissionError, match=f"mode {mode:04o}.*chmod 600"):
        load_key(path)


def test_missing_and_malformed_keys_are_clear_and_do_not_echo(tmp_path: Path) -> None:
    with pytest.raises(KeyMissingError, match="gateway keygen"):
        load_key(tmp_path / "nope")
    bad = tmp_path / "bad"
    secret_looking = "ab" * 31  # 31 bytes: wrong length
    bad.write_text(secret_looking + "\n")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFormatError) as info:
        load_key(bad)
    assert secret_looking not in str(info.value)


def test_repr_never_shows_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "k"
    key = generate_key(path)
    seed_hex = next(ln for ln in path.read_text().splitlines() if not ln.startswith("#"))
    assert seed_hex not in repr(key) and seed_hex not in str(key)


def test_epoch_file_defaults_next_to_the_key(tmp_path: Path) -> None:
    settings = KeySettings(path=tmp_path / "device.key")
    assert settings.resolved_epoch_path() == tmp_path / "device.key.epoch"
