"""The one way secrets are kept in files (gateway device key, backend ack key): made 0600 whatever the
umask, never replaced, read only when private, and never echoed in an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridtokenx.seed_file import SeedFileError, create_seed_file, read_seed_file


def test_made_private_whatever_the_umask_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k"
    old = os.umask(0)
    try:
        create_seed_file(path, "# a test key", bytes(range(32)))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_seed_file(path) == bytes(range(32))
    with pytest.raises(SeedFileError) as info:
        create_seed_file(path, "# another", b"\x01" * 32)
    assert info.value.kind == "exists" and read_seed_file(path) == bytes(range(32))


@pytest.mark.parametrize(
    ("content", "mode", "kind"),
    [
        (None, 0o600, "missing"),
        ("# k\n" + "ab" * 32 + "\n", 0o640, "permission"),
        ("# k\n" + "ab" * 32 + "\n", 0o604, "permission"),
        ("# k\n" + "ab" * 31 + "\n", 0o600, "format"),
        ("# k\n" + "ab" * 32 + "\n" + "cd" * 32 + "\n", 0o600, "format"),
        ("# k\nzz" + "ab" * 31 + "\n", 0o600, "format"),
    ],
)
def test_each_broken_rule_is_named_and_the_content_never_echoed(
    tmp_path: Path, content: str | None, mode: int, kind: str
) -> None:
    path = tmp_path / "k"
    if content is not None:
        path.write_text(content)
        path.chmod(mode)
    with pytest.raises(SeedFileError) as info:
        read_seed_file(path)
    assert info.value.kind == kind
    if kind == "permission":
        assert info.value.mode == mode
    assert "abab" not in str(info.value) and "cdcd" not in str(info.value)


def test_a_directory_is_not_a_key(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir(mode=0o700)
    with pytest.raises(SeedFileError) as info:
        read_seed_file(tmp_path / "k")
    assert info.value.kind == "not_a_file"
