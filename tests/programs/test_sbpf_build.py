"""The build: committed .so files are reproducible byte for byte, and failures say what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from program_testkit import needs_clang

from programs import cli
from programs.toolchain import build
from programs.toolchain.build import BuildError

pytestmark = pytest.mark.tool


def _copy_tree(tmp_path: Path) -> Path:
    """A checkout of programs/ at another path (sources, headers and committed .so only)."""
    root = tmp_path / "elsewhere" / "programs"
    shutil.copytree(build.PROGRAMS_DIR, root, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.o"))
    return root


@needs_clang
def test_rebuild_matches_the_committed_so_files(tmp_path: Path) -> None:
    names = build.list_programs()
    assert "hello" in names
    root = _copy_tree(tmp_path)  # a different checkout path must not change a byte
    results = build.check_programs(names, root)
    assert [(r.name, r.changed) for r in results] == [(n, False) for n in names]


@needs_clang
def test_check_reports_a_difference(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    so = build.so_path("hello", root)
    so.write_bytes(so.read_bytes()[:-1] + b"\x01")
    assert build.check_programs(["hello"], root)[0].changed
    result = build.build_program("hello", root)
    assert result.changed and build.so_path("hello", root).read_bytes() == build.so_path("hello").read_bytes()
    assert not build.build_program("hello", root).changed


@needs_clang
def test_cli_check_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["build", "--check", "hello"])) == 0
    assert "hello: matches" in capsys.readouterr().out
    assert cli.run(parser.parse_args(["build", "nosuch"])) == 2
    assert "unknown program(s) nosuch" in capsys.readouterr().err


@needs_clang
def test_compile_error_names_the_program_and_file(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (root / "hello" / "src" / "broken.c").write_text("int entrypoint( {\n")
    with pytest.raises(BuildError, match=r"program 'hello': broken\.c does not compile"):
        build.build_image("hello", root)


@needs_clang
def test_link_error_names_the_program(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (root / "hello" / "src" / "state_global.c").write_text("int last_seen = 3;\n")
    with pytest.raises(BuildError, match=r"program 'hello': hello/src/state_global\.c: writable section .data"):
        build.build_image("hello", root)


def test_missing_clang_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDTOKENX_CLANG", "clang-19-not-installed")
    with pytest.raises(BuildError, match=r"clang-19-not-installed not found on PATH.*apt-get install clang-19"):
        build.build_image("hello")
