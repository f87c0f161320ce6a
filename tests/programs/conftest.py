"""Fixtures for the on-chain program tests: a LiteSVM chain with hello loaded, and a C snippet compiler."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain, program_so
from programs.toolchain.build import CFLAGS, INCLUDE_DIR

HELLO_ID = Pubkey.from_string("He11o11111111111111111111111111111111111111")
FUNDS = 10 * 10**9


@pytest.fixture
async def chain() -> LiteSVMChain:
    chain = LiteSVMChain()
    chain.add_program(HELLO_ID, program_so("hello"))
    return chain


@pytest.fixture
async def payer(chain: LiteSVMChain) -> Keypair:
    key = Keypair()
    await chain.fund(key.pubkey(), FUNDS)
    return key


@pytest.fixture
def compile_c(tmp_path: Path) -> Callable[[str, str], bytes]:
    """Compile C source text with the project's flags; returns the object bytes."""

    def compile_(source: str, name: str = "snippet") -> bytes:
        src = tmp_path / f"{name}.c"
        src.write_text(source)
        obj = tmp_path / f"{name}.o"
        subprocess.run(
            ["clang-19", *CFLAGS, "-I", str(INCLUDE_DIR), "-c", str(src), "-o", str(obj)],
            check=True, capture_output=True, text=True,
        )
        return obj.read_bytes()

    return compile_
