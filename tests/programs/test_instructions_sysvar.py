"""The Instructions sysvar reader in gtx/introspection.h, compiled into a probe program and compared with
the transaction that ran it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from program_testkit import needs_clang
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.sysvar import INSTRUCTIONS

from programs.client import LiteSVMChain
from programs.toolchain.build import CFLAGS, INCLUDE_DIR
from programs.toolchain.linker import link

pytestmark = [
    pytest.mark.chain,
    pytest.mark.tool,
    needs_clang,
]

# Logs: num_instructions, current_index; then per instruction: index, num_accounts, data_len, first data
# byte, flags of the last account; then the program id of each instruction; then an out-of-range lookup's error.
PROBE_C = r"""
#include <gtx_sol.h>
uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[2];
  GtxInput in;
  gtx_deserialize(input, accounts, 2, &in);
  GtxInstructionsSysvar s;
  GTX_TRY(gtx_instructions_sysvar_load(&accounts[0], &s));
  sol_log_64_(s.num_instructions, s.current_index, 0, 0, 0);
  for (uint16_t i = 0; i < s.num_instructions; i++) {
    GtxIntrospectedInstruction ix;
    GTX_TRY(gtx_instructions_get(&s, i, &ix));
    sol_log_64_(i, ix.num_accounts, ix.data_len, ix.data_len ? ix.data[0] : 0xEE,
                ix.num_accounts ? gtx_ix_account_flags(&ix, ix.num_accounts - 1) : 0xEE);
    sol_log_pubkey(ix.program_id);
    if (ix.num_accounts > 1)
      sol_log_pubkey(gtx_ix_account_key(&ix, 1));
  }
  GtxIntrospectedInstruction none;
  return gtx_instructions_get(&s, s.num_instructions, &none) == ERROR_INVALID_ARGUMENT ? SUCCESS : 99;
}
"""


@pytest.fixture(scope="module")
def probe_so(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp: Path = tmp_path_factory.mktemp("probe")
    (tmp / "probe.c").write_text(PROBE_C)
    subprocess.run(["clang-19", *CFLAGS, "-I", str(INCLUDE_DIR), "-c", str(tmp / "probe.c"), "-o",
                    str(tmp / "probe.o")], check=True, capture_output=True)
    return link([("probe.c", (tmp / "probe.o").read_bytes())])


async def test_reader_matches_the_transaction(probe_so: bytes) -> None:
    chain = LiteSVMChain()
    probe = Pubkey.new_unique()
    other = Pubkey.new_unique()
    chain.add_program(probe, probe_so)
    chain.add_program(other, probe_so)
    payer = Keypair()
    await chain.fund(payer.pubkey(), 10**9)
    marker = Pubkey.new_unique()
    ixs = [
        Instruction(other, b"", [AccountMeta(INSTRUCTIONS, False, False)]),
        Instruction(probe, bytes([7, 8, 9]),
                    [AccountMeta(INSTRUCTIONS, False, False), AccountMeta(marker, False, True)]),
        Instruction(other, bytes([5]), [AccountMeta(INSTRUCTIONS, False, False),
                                        AccountMeta(payer.pubkey(), True, True)]),
    ]
    result = await chain.send_transaction(ixs, [payer])
    result.raise_for_failure()
    # Three invocations; take the second one's log lines.
    runs = "\n".join(result.logs).split(" invoke [1]")
    second = runs[2]
    numbers = re.findall(r"Program log: (0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+)",
                         second)
    rows = [tuple(int(x, 16) for x in row) for row in numbers]
    assert rows[0][:2] == (3, 1)  # three instructions, the probe is number 1
    assert rows[1] == (0, 1, 0, 0xEE, 0)
    assert rows[2] == (1, 2, 3, 7, 0b10)  # marker: writable, not a signer
    assert rows[3] == (2, 2, 1, 5, 0b11)  # payer: writable signer
    keys = re.findall(r"Program log: ([1-9A-HJ-NP-Za-km-z]{32,44})\n", second + "\n")
    assert keys == [str(other), str(probe), str(marker), str(other), str(payer.pubkey())]
    assert "Program log: 0x3, 0x2, 0x0, 0x0, 0x0" in runs[3]  # the third run sees itself as current
