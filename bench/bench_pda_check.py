"""What it costs on chain to insist on the canonical PDA bump, three ways (needs clang-19).

    python bench/bench_pda_check.py

Compiles a small program with the project's toolchain (programs/include, our linker), loads it into
LiteSVM and, for meter PDAs ["meter", id16] whose canonical bump is 0, 1, 2 or 3 steps below 255, prints
the compute units of one transaction that

  try_find   calls sol_try_find_program_address and compares the bump with the one given;
  verify     calls sol_create_program_address for each bump above the given one (each must fail) and
             for the given one (must succeed) — "the client passes the bump, the program checks no
             higher bump is valid";
  gtx/pda.h  does the same check with sol_sha256 + sol_curve_validate_point per bump
             (gtx_expect_canonical_pda, what the programs use);
  rederive   re-derives a known address from a stored bump: sol_create_program_address once vs one
             sha256 (expect_pda).

Each figure includes the same ~150 CU of program overhead (deserialisation, one log line), so the
differences are what counts. The choice and the reasons are in docs/programs.md, "Canonical addresses".
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain
from programs.toolchain.build import CFLAGS, INCLUDE_DIR, find_clang
from programs.toolchain.linker import link

SOURCE = r"""
#include <gtx_sol.h>

/* data: [0] method, [1..17] meter id, [17] bump; account 0: the PDA */
uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo a[1];
  GtxInput in;
  gtx_deserialize(input, a, 1, &in);
  uint8_t method = in.data[0], given = in.data[17];
  SolSignerSeed parts[3] = {{(const uint8_t *)"meter", 5}, {in.data + 1, 16}, {0, 1}};
  SolSignerSeeds seeds = {parts, 2};
  SolPubkey out;
  uint8_t found;
  switch (method) {
  case 0: /* try_find */
    if (sol_try_find_program_address(parts, 2, in.program_id, &out, &found) != 0 || found != given ||
        !gtx_pubkey_eq(&out, a[0].key))
      return 1;
    break;
  case 1: /* verify with sol_create_program_address */
    for (uint64_t b = 255; b > given; b--) {
      uint8_t bb = (uint8_t)b;
      parts[2].addr = &bb;
      if (sol_create_program_address(parts, 3, in.program_id, &out) == 0)
        return 2;
    }
    parts[2].addr = &given;
    if (sol_create_program_address(parts, 3, in.program_id, &out) != 0 || !gtx_pubkey_eq(&out, a[0].key))
      return 3;
    break;
  case 2: /* gtx/pda.h */
    GTX_TRY(gtx_expect_canonical_pda(&a[0], &seeds, given, in.program_id, 4));
    break;
  case 3: /* re-derive with sol_create_program_address */
    GTX_TRY(gtx_create_program_address(&seeds, given, in.program_id, &out));
    if (!gtx_pubkey_eq(&out, a[0].key))
      return 5;
    break;
  case 4: /* re-derive with sha256 */
    GTX_TRY(expect_pda(&a[0], &seeds, given, in.program_id));
    break;
  default:
    return 6;
  }
  GTX_LOG("ok");
  return SUCCESS;
}
"""

METHODS = ["try_find", "verify (create_program_address)", "gtx/pda.h (sha256 + curve)",
           "re-derive: create_program_address", "re-derive: sha256"]


def build() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, obj = Path(tmp) / "pda_check.c", Path(tmp) / "pda_check.o"
        src.write_text(SOURCE)
        subprocess.run([find_clang(), *CFLAGS, "-I", str(INCLUDE_DIR), "-c", str(src), "-o", str(obj)], check=True)
        return link([("pda_check.o", obj.read_bytes())])


def meter_ids_by_distance(program_id: Pubkey) -> dict[int, bytes]:
    """A meter id whose canonical bump is 255 - d, for d = 0..3."""
    found: dict[int, bytes] = {}
    n = 0
    while len(found) < 4:
        meter_id = f"SDM630-{n:06d}".encode().ljust(16, b"\0")
        _, bump = Pubkey.find_program_address([b"meter", meter_id], program_id)
        if 255 - bump < 4:
            found.setdefault(255 - bump, meter_id)
        n += 1
    return found


async def measure() -> dict[str, dict[int, int]]:
    chain = LiteSVMChain()
    program_id = Keypair.from_seed(bytes([0xC0]) * 32).pubkey()
    chain.add_program(program_id, build())
    payer = Keypair.from_seed(bytes([0xC1]) * 32)
    await chain.fund(payer.pubkey(), 10**9)
    out: dict[str, dict[int, int]] = {m: {} for m in METHODS}
    for distance, meter_id in sorted(meter_ids_by_distance(program_id).items()):
        address, bump = Pubkey.find_program_address([b"meter", meter_id], program_id)
        for method, name in enumerate(METHODS):
            data = bytes([method]) + meter_id + bytes([bump])
            ix = Instruction(program_id, data, [AccountMeta(address, False, False)])
            result = await chain.send_transaction([ix], [payer])
            result.raise_for_failure()
            out[name][distance] = result.compute_units
    return out


def main() -> None:
    cu = asyncio.run(measure())
    print("| method | canonical = 255 | 254 | 253 | 252 |")
    print("|---|---:|---:|---:|---:|")
    for name, by_distance in cu.items():
        print(f"| {name} | " + " | ".join(f"{by_distance[d]:,}" for d in range(4)) + " |")


if __name__ == "__main__":
    main()
