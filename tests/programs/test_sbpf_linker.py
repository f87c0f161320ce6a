"""The linker: what it refuses, how it relocates, and that LiteSVM runs what it writes."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import Section, SymbolTableSection
from program_testkit import needs_clang
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain, program_so
from programs.hello import client as hello
from programs.toolchain.linker import R_BPF_64_32, R_BPF_64_RELATIVE, LinkError, link

pytestmark = [
    pytest.mark.chain,
    pytest.mark.tool,
    needs_clang,
]

Compile = Callable[..., bytes]

# Two objects: a cross-object call, a pointer table in .rodata (R_BPF_64_ABS64), string literals
# (R_BPF_64_64 + R_BPF_64_RELATIVE), syscalls (dynamic R_BPF_64_32) and a static helper.
MAIN_C = r"""
#include <gtx_sol.h>
uint64_t pick(uint64_t i);
static const char *const NAMES[] = {"zero", "one", "two"};
static __attribute__((noinline)) void say(uint64_t i) { sol_log_(NAMES[i % 3], i % 3 == 0 ? 4 : 3); }
uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[1];
  GtxInput in;
  gtx_deserialize(input, accounts, 1, &in);
  if (in.data_len != 1) return ERROR_INVALID_INSTRUCTION_DATA;
  say(in.data[0]);
  GTX_LOG("linked");
  return pick(in.data[0]);
}
"""
PICK_C = r"""
#include <gtx_sol.h>
static const uint64_t TABLE[4] = {0, 7, 0, 9};
uint64_t pick(uint64_t i) { return i < 4 ? TABLE[i] : 11; }
"""


async def _run(so: bytes, data: bytes) -> tuple[list[str], str | None]:
    chain = LiteSVMChain()
    program = Pubkey.new_unique()
    chain.add_program(program, so)
    payer = Keypair()
    await chain.fund(payer.pubkey(), 10**9)
    result = await chain.send_transaction([Instruction(program, data, [])], [payer])
    return list(result.logs), None if result.failure is None else str(result.failure)


async def test_two_objects_link_and_run(compile_c: Compile) -> None:
    so = link([("main.c", compile_c(MAIN_C, "main")), ("pick.c", compile_c(PICK_C, "pick"))])
    logs, failure = await _run(so, bytes([1]))
    assert "Program log: one" in logs and "Program log: linked" in logs
    assert failure == "instruction 0: Custom(7)"  # TABLE[1], read through the cross-object call
    logs, failure = await _run(so, bytes([0]))
    assert "Program log: zero" in logs and failure is None
    logs, failure = await _run(so, bytes([5]))
    assert "Program log: two" in logs and failure == "instruction 0: Custom(11)"


def test_output_is_an_sbpf_v0_shared_object(compile_c: Compile) -> None:
    so = link([("main.c", compile_c(MAIN_C, "main")), ("pick.c", compile_c(PICK_C, "pick"))])
    elf = ELFFile(io.BytesIO(so))
    assert elf["e_type"] == "ET_DYN" and elf["e_machine"] == "EM_BPF" and elf["e_flags"] == 0
    names = [s.name for s in elf.iter_sections()]
    assert names == ["", ".text", ".rodata", ".dynamic", ".dynsym", ".dynstr", ".rel.dyn", ".shstrtab"]
    for sec in elf.iter_sections():
        if sec["sh_flags"] & 0x2:
            assert sec["sh_addr"] == sec["sh_offset"], sec.name
    assert [seg["p_type"] for seg in elf.iter_segments()] == ["PT_LOAD", "PT_DYNAMIC"]
    symbols = _section(elf, ".dynsym")
    assert isinstance(symbols, SymbolTableSection)
    dynsym = {s.name: s for s in symbols.iter_symbols()}
    assert dynsym["entrypoint"]["st_value"] == elf["e_entry"]
    assert {"sol_log_", "sol_memcpy_"} <= set(dynsym)
    assert "pick" not in dynsym  # internal calls are relative, not dynamic
    rel_dyn = _section(elf, ".rel.dyn")
    assert isinstance(rel_dyn, RelocationSection)
    relocs = list(rel_dyn.iter_relocations())
    types = {r["r_info_type"] for r in relocs}
    assert types == {R_BPF_64_RELATIVE, R_BPF_64_32}
    text = _section(elf, ".text")
    for r in relocs:
        insn = so[r["r_offset"]]
        assert text["sh_offset"] <= r["r_offset"] < text["sh_offset"] + text["sh_size"]
        assert insn == (0x18 if r["r_info_type"] == R_BPF_64_RELATIVE else 0x85)
    # The pointer table in .rodata was resolved in place to the loaded address of the strings.
    rodata = _section(elf, ".rodata")
    words = struct.unpack_from("<3Q", so, rodata["sh_offset"] + _find_table(so, rodata))
    assert all(0x1_0000_0000 + rodata["sh_offset"] <= w < 0x1_0000_0000 + len(so) for w in words)
    assert so[words[1] - 0x1_0000_0000 : words[1] - 0x1_0000_0000 + 3] == b"one"


def _section(elf: ELFFile, name: str) -> Section:
    section = elf.get_section_by_name(name)
    assert section is not None, f"no {name} section"
    return section


def _find_table(so: bytes, rodata: object) -> int:
    start, size = rodata["sh_offset"], rodata["sh_size"]  # type: ignore[index]
    for off in range(0, size - 23, 8):
        words = struct.unpack_from("<3Q", so, start + off)
        if all(w >> 32 == 1 for w in words):
            return off
    raise AssertionError("pointer table not found in .rodata")


def test_output_is_deterministic(compile_c: Compile) -> None:
    objects = [("main.c", compile_c(MAIN_C, "main")), ("pick.c", compile_c(PICK_C, "pick"))]
    assert link(objects) == link(objects)
    # Object names only appear in error messages.
    assert link(objects) == link([("/elsewhere/a.o", objects[0][1]), ("b.o", objects[1][1])])


@pytest.mark.parametrize(
    ("source", "section", "symbol"),
    [
        ("uint64_t counter = 5;\nuint64_t entrypoint(const uint8_t *i) { counter += i[0]; return counter; }",
         ".data", "counter"),
        ("static uint64_t hits;\nuint64_t entrypoint(const uint8_t *i) { hits += i[0]; return hits; }",
         ".bss", "hits"),
    ],
)
def test_refuses_writable_sections_naming_the_symbol(compile_c: Compile, source: str, section: str,
                                                     symbol: str) -> None:
    obj = compile_c("#include <stdint.h>\n" + source)
    with pytest.raises(LinkError) as err:
        link([("state.c", obj)])
    message = str(err.value)
    assert "state.c" in message and section in message and symbol in message and "account" in message


def test_refuses_duplicate_strong_symbols_but_merges_weak(compile_c: Compile) -> None:
    a = compile_c("#include <gtx_sol.h>\nuint64_t f(void) { return 1; }\n"
                  "uint64_t entrypoint(const uint8_t *i) { (void)i; return f(); }", "a")
    b = compile_c("#include <gtx_sol.h>\nuint64_t f(void) { return 2; }", "b")
    with pytest.raises(LinkError, match=r"symbol f is defined in both a\.c and b\.c"):
        link([("a.c", a), ("b.c", b)])
    # Both include the header's weak memcpy/memset: that links.
    c = compile_c("#include <gtx_sol.h>\nuint64_t g(void) { return 2; }", "c")
    assert link([("a.c", a), ("c.c", c)])


def test_refuses_missing_entrypoint_and_non_bpf_input(compile_c: Compile) -> None:
    obj = compile_c(PICK_C)
    with pytest.raises(LinkError, match="entry point 'entrypoint' is not defined"):
        link([("pick.c", obj)])
    with pytest.raises(LinkError, match="not an ELF object"):
        link([("junk.o", b"not an elf file at all")])
    with pytest.raises(LinkError, match="no input objects"):
        link([])


def test_refuses_function_pointers(compile_c: Compile) -> None:
    obj = compile_c(
        "#include <stdint.h>\n"
        "static uint64_t one(void) { return 1; }\nstatic uint64_t two(void) { return 2; }\n"
        "uint64_t entrypoint(const uint8_t *i) { uint64_t (*volatile f)(void) = i[0] ? one : two;"
        " return f(); }"
    )
    with pytest.raises(LinkError, match="function pointers are not supported"):
        link([("fp.c", obj)])


CHECKED_C = r"""
#include <gtx_sol.h>
/* data: op (0 add, 1 sub, 2 mul, 3 LE round trip), a u64, b u64 -> logs the result or returns the error */
uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[1];
  GtxInput in;
  gtx_deserialize(input, accounts, 1, &in);
  uint64_t a = gtx_load_u64_le(in.data + 1), b = gtx_load_u64_le(in.data + 9), r = 0;
  switch (in.data[0]) {
  case 0: GTX_TRY(gtx_add_u64(a, b, &r)); break;
  case 1: GTX_TRY(gtx_sub_u64(a, b, &r)); break;
  case 2: GTX_TRY(gtx_mul_u64(a, b, &r)); break;
  default: {
    uint8_t buf[15];
    gtx_store_u64_le(buf + 1, a);
    gtx_store_u32_le(buf + 9, (uint32_t)b);
    gtx_store_u16_le(buf + 13, (uint16_t)(b >> 32));
    r = gtx_load_u64_le(buf + 1) ^ gtx_load_u32_le(buf + 9) ^ ((uint64_t)gtx_load_u16_le(buf + 13) << 32);
  }
  }
  sol_log_64_(r, 0, 0, 0, 0);
  return SUCCESS;
}
"""
U64 = 2**64 - 1


@pytest.mark.parametrize(
    ("op", "a", "b", "expected"),
    [
        (0, 2, 3, 5), (0, U64, 1, None), (0, U64 - 1, 1, U64),
        (1, 5, 3, 2), (1, 3, 5, None), (1, 7, 7, 0),
        (2, 2**32, 2**31, 2**63), (2, 2**32, 2**32, None), (2, 0, U64, 0), (2, U64, 1, U64),
        (2, 3, 6148914691236517205, U64), (2, 3, 6148914691236517206, None), (2, 0xFFFF_FFFF, 0x1_0000_0001, U64),
        (3, 0x1122334455667788, 0xAABB_CCDDEEFF, 0x1122334455667788 ^ 0xCCDDEEFF ^ (0xAABB << 32)),
    ],
)
async def test_header_checked_math_and_little_endian(compile_c: Compile, op: int, a: int, b: int,
                                                     expected: int | None) -> None:
    so = link([("checked.c", compile_c(CHECKED_C))])
    logs, failure = await _run(so, struct.pack("<BQQ", op, a, b))
    if expected is None:
        assert failure == "instruction 0: ArithmeticOverflow"
    else:
        assert failure is None
        assert f"Program log: {expected:#x}, 0x0, 0x0, 0x0, 0x0" in logs


async def test_committed_hello_runs_with_mainnet_features() -> None:
    chain = LiteSVMChain(LiteSVM().with_mainnet_features())
    program = Pubkey.new_unique()
    chain.add_program(program, program_so("hello"))
    payer = Keypair()
    await chain.fund(payer.pubkey(), 10**9)
    (await chain.send_transaction([hello.initialize(program, payer.pubkey())], [payer])).raise_for_failure()
    result = await chain.send_transaction([hello.greet(program, payer.pubkey(), 3)], [payer])
    assert isinstance(hello.decode_events(result.raise_for_failure(), program)[0], hello.Greeted)


SYSCALLS_C = r"""
#include <gtx_sol.h>
/* Emits sha256(instruction data) as an event and logs the clock's slot and unix timestamp. */
uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo accounts[1];
  GtxInput in;
  gtx_deserialize(input, accounts, 1, &in);
  uint8_t digest[32];
  SolBytes data = {in.data, in.data_len};
  if (sol_sha256(&data, 1, digest) != 0) return ERROR_INVALID_ARGUMENT;
  SolBytes event[1] = {{digest, 32}};
  sol_log_data(event, 1);
  SolClock clock;
  if (sol_get_clock_sysvar(&clock) != 0) return ERROR_UNSUPPORTED_SYSVAR;
  sol_log_64_(clock.slot, (uint64_t)clock.unix_timestamp, 0, 0, 0);
  return SUCCESS;
}
"""


async def test_header_sha256_and_clock_syscalls(compile_c: Compile) -> None:
    import hashlib

    chain = LiteSVMChain()
    chain.svm.warp_to_slot(1234)
    program = Pubkey.new_unique()
    chain.add_program(program, link([("syscalls.c", compile_c(SYSCALLS_C))]))
    payer = Keypair()
    await chain.fund(payer.pubkey(), 10**9)
    data = b"reading bytes to hash"
    result = (await chain.send_transaction([Instruction(program, data, [])], [payer])).raise_for_failure()
    assert result.events() == [[hashlib.sha256(data).digest()]]
    clock = chain.svm.get_clock()
    assert f"Program log: {clock.slot:#x}, {clock.unix_timestamp:#x}, 0x0, 0x0, 0x0" in result.logs
    assert clock.slot == 1234
