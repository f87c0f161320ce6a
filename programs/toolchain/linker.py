"""Link BPF relocatable objects (``clang-19 -target bpf -c``) into an SBPF v0 shared object.

``ld.lld`` refuses BPF output ("unsupported e_machine value: 247") and Solana's own toolchain cannot be
fetched here, so this module does the small part of a linker the Solana loader needs (see
docs/programs.md, "Toolchain"):

* one ``.text`` (all executable input sections) and one ``.rodata`` (all read-only data), laid out so that
  every section's virtual address equals its file offset, as SBPF v0 requires;
* ``R_BPF_64_64`` (``lddw`` of a symbol): the address inside the file goes into the two immediates and a
  dynamic ``R_BPF_64_RELATIVE`` makes the loader add the program base ``0x1_0000_0000``;
* ``R_BPF_64_ABS64`` (pointers stored in ``.rodata``): resolved in place to base + address, because the v0
  loader mishandles ``R_BPF_64_RELATIVE`` outside ``.text``;
* ``R_BPF_64_32`` on ``call``: a function we define becomes a pc-relative call; an undefined name is a
  syscall, left as ``imm = -1`` with a dynamic ``R_BPF_64_32`` against a named ``.dynsym`` entry (the
  loader hashes the name, e.g. ``sol_log_``).

Writable data (``.data``, ``.bss``, common symbols) is refused: a program's image is read-only on chain, so
state belongs in accounts. Output depends only on the input bytes and their order: no timestamps, no paths.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

__all__ = ["MM_PROGRAM_START", "LinkError", "link", "link_files"]

MM_PROGRAM_START = 0x1_0000_0000  # where the loader maps the program image

# ELF constants (only the ones used).
_EM_BPF = 247
_ET_DYN = 3
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 0x1, 0x2, 0x4
_SHT_PROGBITS, _SHT_STRTAB, _SHT_DYNAMIC, _SHT_REL, _SHT_DYNSYM = 1, 3, 6, 9, 11
_PT_LOAD, _PT_DYNAMIC = 1, 2
_PF_X, _PF_R = 1, 4
_DT_NULL, _DT_STRTAB, _DT_SYMTAB, _DT_STRSZ, _DT_SYMENT = 0, 5, 6, 10, 11
_DT_REL, _DT_RELSZ, _DT_RELENT, _DT_TEXTREL, _DT_FLAGS, _DT_RELCOUNT = 17, 18, 19, 22, 30, 0x6FFFFFFA
_DF_TEXTREL = 0x4
_STB_GLOBAL, _STT_NOTYPE, _STT_FUNC = 1, 0, 2

R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_RELATIVE = 8
R_BPF_64_32 = 10

_EHDR_SIZE, _PHDR_SIZE, _SHDR_SIZE, _SYM_SIZE, _REL_SIZE, _DYN_SIZE = 64, 56, 64, 24, 16, 16
_INSN = 8
_OP_LDDW, _OP_CALL, _OP_CALLX = 0x18, 0x85, 0x8D
_CLASS_JMP32 = 0x06


class LinkError(Exception):
    """The objects cannot become an SBPF v0 program; the message names the object, section and symbol."""


@dataclass
class _InputSection:
    obj: str
    index: int
    name: str
    kind: str  # "text" or "rodata"
    data: bytearray
    align: int
    out_offset: int = 0  # offset inside the output section


@dataclass
class _Object:
    name: str
    elf: ELFFile
    symtab: SymbolTableSection | None
    sections: dict[int, _InputSection] = field(default_factory=dict)


@dataclass(frozen=True)
class _Definition:
    obj: str
    section: _InputSection
    value: int
    size: int
    weak: bool
    is_func: bool


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _symbols_in(obj: _Object, shndx: int) -> list[str]:
    if obj.symtab is None:
        return []
    return sorted(
        s.name for s in obj.symtab.iter_symbols() if s["st_shndx"] == shndx and s.name and s["st_info"]["type"]
        in ("STT_OBJECT", "STT_FUNC", "STT_NOTYPE")
    )


def _read_object(name: str, data: bytes) -> _Object:
    try:
        elf = ELFFile(io.BytesIO(data))
    except ELFError as exc:
        raise LinkError(f"{name}: not an ELF object ({exc})") from exc
    if elf.elfclass != 64 or not elf.little_endian or elf["e_machine"] != "EM_BPF":
        raise LinkError(f"{name}: expected a little-endian ELF64 BPF object (clang -target bpf)")
    if elf["e_type"] != "ET_REL":
        raise LinkError(f"{name}: expected a relocatable object (.o), got {elf['e_type']}")
    symtab = elf.get_section_by_name(".symtab")
    obj = _Object(name, elf, symtab if isinstance(symtab, SymbolTableSection) else None)
    for index, sec in enumerate(elf.iter_sections()):
        flags = sec["sh_flags"]
        if not flags & _SHF_ALLOC or sec["sh_size"] == 0:
            continue  # .symtab, .rel.*, .BTF, debug info, .llvm_addrsig: not part of the image
        if flags & _SHF_WRITE and not sec.name.startswith(".data.rel.ro"):
            # .data.rel.ro is const data that only needed relocation; everything else writable is a
            # mutable global, which an on-chain program cannot have.
            syms = ", ".join(_symbols_in(obj, index)) or "(no named symbol)"
            raise LinkError(
                f"{name}: writable section {sec.name} (symbols: {syms}) is not supported: programs have no "
                "mutable globals on chain; make the data `const` or keep the state in an account"
            )
        kind = "text" if flags & _SHF_EXECINSTR else "rodata"
        payload = bytearray(sec["sh_size"]) if sec["sh_type"] == "SHT_NOBITS" else bytearray(sec.data())
        align = max(int(sec["sh_addralign"]), 8 if kind == "text" else 1)
        obj.sections[index] = _InputSection(name, index, sec.name, kind, payload, align)
    if obj.symtab is not None:
        for sym in obj.symtab.iter_symbols():
            if sym["st_shndx"] == "SHN_COMMON":
                raise LinkError(
                    f"{name}: symbol {sym.name} is an uninitialised mutable global (common/.bss), which "
                    "programs cannot have on chain; make it `const` or keep the state in an account"
                )
    return obj


class _Linker:
    def __init__(self, objects: Sequence[tuple[str, bytes]], entry: str) -> None:
        self.entry = entry
        self.objects = [_read_object(name, data) for name, data in objects]
        self.text: list[_InputSection] = []
        self.rodata: list[_InputSection] = []
        self.globals: dict[str, _Definition] = {}
        self.text_size = 0
        self.rodata_size = 0
        self.text_vaddr = 0
        self.rodata_vaddr = 0
        self.relative_relocs: list[int] = []  # r_offset of R_BPF_64_RELATIVE
        self.syscall_relocs: list[tuple[int, str]] = []  # (r_offset, syscall name)

    # -- layout and symbols -------------------------------------------------------------------------
    def _lay_out(self) -> None:
        for obj in self.objects:
            for sec in obj.sections.values():
                (self.text if sec.kind == "text" else self.rodata).append(sec)
        if not self.text:
            raise LinkError("no executable code in the input objects")
        for group, attr in ((self.text, "text_size"), (self.rodata, "rodata_size")):
            size = 0
            for sec in group:
                size = _align(size, sec.align)
                sec.out_offset = size
                size += len(sec.data)
            setattr(self, attr, size)
        self.text_vaddr = _align(_EHDR_SIZE + 2 * _PHDR_SIZE, 8)
        self.rodata_vaddr = _align(self.text_vaddr + self.text_size, 8)

    def _vaddr(self, sec: _InputSection, value: int) -> int:
        base = self.text_vaddr if sec.kind == "text" else self.rodata_vaddr
        return base + sec.out_offset + value

    def _collect_globals(self) -> None:
        for obj in self.objects:
            if obj.symtab is None:
                continue
            for sym in obj.symtab.iter_symbols():
                bind = sym["st_info"]["bind"]
                shndx = sym["st_shndx"]
                if bind not in ("STB_GLOBAL", "STB_WEAK") or not isinstance(shndx, int):
                    continue
                if shndx not in obj.sections:
                    raise LinkError(f"{obj.name}: symbol {sym.name} is defined in a section that is not loaded")
                new = _Definition(
                    obj.name,
                    obj.sections[shndx],
                    sym["st_value"],
                    sym["st_size"],
                    bind == "STB_WEAK",
                    sym["st_info"]["type"] == "STT_FUNC",
                )
                old = self.globals.get(sym.name)
                if old is None or (old.weak and not new.weak):
                    self.globals[sym.name] = new
                elif not old.weak and not new.weak:
                    raise LinkError(f"symbol {sym.name} is defined in both {old.obj} and {obj.name}")

    def _resolve(self, obj: _Object, sym_index: int) -> tuple[str, int | None]:
        """(name, vaddr) of a relocation's symbol; vaddr is None for an undefined symbol."""
        assert obj.symtab is not None
        sym = obj.symtab.get_symbol(sym_index)
        shndx = sym["st_shndx"]
        if sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK") or shndx == "SHN_UNDEF":
            found = self.globals.get(sym.name)
            if found is None:
                return sym.name, None
            return sym.name, self._vaddr(found.section, found.value)
        if not isinstance(shndx, int) or shndx not in obj.sections:
            raise LinkError(f"{obj.name}: relocation against {sym.name or 'a section'} in a section not loaded")
        return sym.name or obj.sections[shndx].name, self._vaddr(obj.sections[shndx], sym["st_value"])

    # -- relocations --------------------------------------------------------------------------------
    def _relocate(self) -> None:
        for obj in self.objects:
            for sec in obj.elf.iter_sections():
                if sec["sh_type"] == "SHT_RELA":
                    if sec["sh_info"] in obj.sections:
                        raise LinkError(f"{obj.name}: {sec.name}: RELA relocations are not expected from BPF")
                    continue
                if not isinstance(sec, RelocationSection) or sec["sh_info"] not in obj.sections:
                    continue  # relocations for .BTF or debug sections: not loaded
                target = obj.sections[sec["sh_info"]]
                for rel in sec.iter_relocations():
                    self._apply(obj, target, rel["r_offset"], rel["r_info_type"], rel["r_info_sym"])

    def _apply(self, obj: _Object, target: _InputSection, offset: int, rtype: int, sym_index: int) -> None:
        name, value = self._resolve(obj, sym_index)
        where = f"{obj.name}: {target.name}+{offset:#x} ({name})"
        data = target.data
        if target.kind == "text":
            if offset % _INSN or offset + _INSN > len(data):
                raise LinkError(f"{where}: relocation is not on an instruction boundary")
            opcode = data[offset]
            pc_vaddr = self._vaddr(target, offset)
            if rtype == R_BPF_64_64:
                if opcode != _OP_LDDW or offset + 2 * _INSN > len(data):
                    raise LinkError(f"{where}: R_BPF_64_64 is not on an lddw instruction")
                if value is None:
                    raise LinkError(f"{where}: undefined symbol {name} (data must be defined in one of the .c files)")
                lo, = struct.unpack_from("<I", data, offset + 4)
                hi, = struct.unpack_from("<I", data, offset + 12)
                address = value + (lo | hi << 32)
                struct.pack_into("<I", data, offset + 4, address & 0xFFFF_FFFF)
                struct.pack_into("<I", data, offset + 12, address >> 32)
                self.relative_relocs.append(pc_vaddr)
            elif rtype == R_BPF_64_32:
                if opcode != _OP_CALL:
                    raise LinkError(f"{where}: R_BPF_64_32 is not on a call instruction")
                if value is None:
                    # A syscall: the loader replaces imm with the hash of the name and checks it exists.
                    struct.pack_into("<i", data, offset + 4, -1)
                    self.syscall_relocs.append((pc_vaddr, name))
                    return
                imm, = struct.unpack_from("<i", data, offset + 4)
                callee = value + (imm + 1) * _INSN  # implicit addend: LLVM stores A/8 - 1
                text_end = self.text_vaddr + self.text_size
                if callee % _INSN or not self.text_vaddr <= callee < text_end:
                    raise LinkError(f"{where}: call target {name} is not code")
                struct.pack_into("<i", data, offset + 4, (callee - pc_vaddr) // _INSN - 1)
            else:
                raise LinkError(f"{where}: unsupported relocation type {rtype} in code")
        else:
            if rtype != R_BPF_64_ABS64:
                raise LinkError(f"{where}: unsupported relocation type {rtype} in read-only data")
            if value is None:
                raise LinkError(f"{where}: undefined symbol {name}")
            addend, = struct.unpack_from("<Q", data, offset)
            struct.pack_into("<Q", data, offset, MM_PROGRAM_START + value + addend)

    def _check_code(self) -> None:
        """Refuse instructions SBPF v0 would reject or run differently, with the function's name."""
        for sec in self.text:
            pos = 0
            while pos < len(sec.data):
                opcode = sec.data[pos]
                if opcode == _OP_CALLX:
                    raise LinkError(
                        f"{sec.obj}: {sec.name}+{pos:#x}: indirect call (function pointer); SBPF v0 encodes "
                        "callx differently from LLVM, so function pointers are not supported"
                    )
                if opcode & 0x07 == _CLASS_JMP32:
                    raise LinkError(
                        f"{sec.obj}: {sec.name}+{pos:#x}: 32-bit jump (JMP32); compile with -mcpu=v2, not v3/v4"
                    )
                pos += 2 * _INSN if opcode == _OP_LDDW else _INSN

    # -- output -------------------------------------------------------------------------------------
    def link(self) -> bytes:
        self._lay_out()
        self._collect_globals()
        entry = self.globals.get(self.entry)
        if entry is None or entry.section.kind != "text":
            raise LinkError(f"entry point {self.entry!r} is not defined as a global function in .text")
        self._relocate()
        self._check_code()
        return self._write(entry)

    def _write(self, entry: _Definition) -> bytes:
        text = bytearray(self.text_size)
        for sec in self.text:
            text[sec.out_offset : sec.out_offset + len(sec.data)] = sec.data
        rodata = bytearray(self.rodata_size)
        for sec in self.rodata:
            rodata[sec.out_offset : sec.out_offset + len(sec.data)] = sec.data

        syscalls = sorted({name for _, name in self.syscall_relocs})
        dynstr = bytearray(b"\0")
        name_offsets: dict[str, int] = {}
        for name in [self.entry, *syscalls]:
            name_offsets[name] = len(dynstr)
            dynstr += name.encode() + b"\0"
        sym_index = {name: i + 2 for i, name in enumerate(syscalls)}  # 0: null, 1: entry point

        relocs = sorted(
            [(off, R_BPF_64_RELATIVE, 0) for off in self.relative_relocs]
            + [(off, R_BPF_64_32, sym_index[name]) for off, name in self.syscall_relocs]
        )

        # File layout: headers, .text, .rodata, .dynamic, .dynsym, .dynstr, .rel.dyn | .shstrtab, shdrs.
        has_rodata = self.rodata_size > 0
        text_off = self.text_vaddr
        rodata_off = self.rodata_vaddr
        dynamic_off = _align(rodata_off + self.rodata_size, 8)
        dyn_entries = 6 + (4 if relocs else 0) + 1
        dynsym_off = dynamic_off + dyn_entries * _DYN_SIZE
        dynsym_size = (2 + len(syscalls)) * _SYM_SIZE
        dynstr_off = dynsym_off + dynsym_size
        reldyn_off = _align(dynstr_off + len(dynstr), 8)
        reldyn_size = len(relocs) * _REL_SIZE
        load_end = reldyn_off + reldyn_size

        names = [".text", *([".rodata"] if has_rodata else []), ".dynamic", ".dynsym", ".dynstr", ".rel.dyn"]
        shstrtab = bytearray(b"\0")
        sh_name: dict[str, int] = {}
        for name in [*names, ".shstrtab"]:
            sh_name[name] = len(shstrtab)
            shstrtab += name.encode() + b"\0"
        shstrtab_off = load_end
        shdr_off = _align(shstrtab_off + len(shstrtab), 8)
        index = {name: i + 1 for i, name in enumerate([*names, ".shstrtab"])}

        dynamic = bytearray()
        entries = [(_DT_FLAGS, _DF_TEXTREL), (_DT_TEXTREL, 0)]
        if relocs:
            relcount = len(self.relative_relocs)
            entries += [(_DT_REL, reldyn_off), (_DT_RELSZ, reldyn_size), (_DT_RELENT, _REL_SIZE),
                        (_DT_RELCOUNT, relcount)]
        entries += [(_DT_SYMTAB, dynsym_off), (_DT_SYMENT, _SYM_SIZE), (_DT_STRTAB, dynstr_off),
                    (_DT_STRSZ, len(dynstr)), (_DT_NULL, 0)]
        assert len(entries) == dyn_entries
        for tag, val in entries:
            dynamic += struct.pack("<QQ", tag, val)

        dynsym = bytearray(_SYM_SIZE)
        entry_vaddr = self._vaddr(entry.section, entry.value)
        dynsym += struct.pack("<IBBHQQ", name_offsets[self.entry], _STB_GLOBAL << 4 | _STT_FUNC, 0,
                              index[".text"], entry_vaddr, entry.size)
        for name in syscalls:
            dynsym += struct.pack("<IBBHQQ", name_offsets[name], _STB_GLOBAL << 4 | _STT_NOTYPE, 0, 0, 0, 0)

        reldyn = b"".join(struct.pack("<QQ", off, sym << 32 | rtype) for off, rtype, sym in relocs)

        out = bytearray(shdr_off + (len(names) + 2) * _SHDR_SIZE)
        ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELF64, little-endian, version 1, SYSV ABI
        struct.pack_into("<16sHHIQQQIHHHHHH", out, 0, ident, _ET_DYN, _EM_BPF, 1, entry_vaddr, _EHDR_SIZE,
                         shdr_off, 0, _EHDR_SIZE, _PHDR_SIZE, 2, _SHDR_SIZE, len(names) + 2,
                         index[".shstrtab"])
        struct.pack_into("<IIQQQQQQ", out, _EHDR_SIZE, _PT_LOAD, _PF_R | _PF_X, text_off, text_off, text_off,
                         load_end - text_off, load_end - text_off, 8)
        struct.pack_into("<IIQQQQQQ", out, _EHDR_SIZE + _PHDR_SIZE, _PT_DYNAMIC, _PF_R, dynamic_off,
                         dynamic_off, dynamic_off, len(dynamic), len(dynamic), 8)
        for off, blob in ((text_off, text), (rodata_off, rodata), (dynamic_off, dynamic), (dynsym_off, dynsym),
                          (dynstr_off, dynstr), (reldyn_off, reldyn), (shstrtab_off, shstrtab)):
            out[off : off + len(blob)] = blob

        def shdr(i: int, name: str, stype: int, flags: int, off: int, size: int, link: int = 0, info: int = 0,
                 align: int = 8, entsize: int = 0) -> None:
            addr = off if flags & _SHF_ALLOC else 0  # vaddr == file offset (SBPF v0)
            struct.pack_into("<IIQQQQIIQQ", out, shdr_off + i * _SHDR_SIZE, sh_name[name], stype, flags, addr,
                             off, size, link, info, align, entsize)

        shdr(index[".text"], ".text", _SHT_PROGBITS, _SHF_ALLOC | _SHF_EXECINSTR, text_off, self.text_size)
        if has_rodata:
            shdr(index[".rodata"], ".rodata", _SHT_PROGBITS, _SHF_ALLOC, rodata_off, self.rodata_size)
        shdr(index[".dynamic"], ".dynamic", _SHT_DYNAMIC, _SHF_ALLOC, dynamic_off, len(dynamic),
             link=index[".dynstr"], entsize=_DYN_SIZE)
        shdr(index[".dynsym"], ".dynsym", _SHT_DYNSYM, _SHF_ALLOC, dynsym_off, dynsym_size,
             link=index[".dynstr"], info=1, entsize=_SYM_SIZE)
        shdr(index[".dynstr"], ".dynstr", _SHT_STRTAB, _SHF_ALLOC, dynstr_off, len(dynstr), align=1)
        shdr(index[".rel.dyn"], ".rel.dyn", _SHT_REL, _SHF_ALLOC, reldyn_off, reldyn_size,
             link=index[".dynsym"], entsize=_REL_SIZE)
        shdr(index[".shstrtab"], ".shstrtab", _SHT_STRTAB, 0, shstrtab_off, len(shstrtab), align=1)
        return bytes(out)


def link(objects: Sequence[tuple[str, bytes]], entry: str = "entrypoint") -> bytes:
    """Link ``(name, object bytes)`` pairs, in the given order, into an SBPF v0 shared object.

    ``name`` appears only in error messages. Raises :class:`LinkError` naming the object, section and
    symbol when the input cannot run on chain.
    """
    if not objects:
        raise LinkError("no input objects")
    return _Linker(objects, entry).link()


def link_files(paths: Sequence[Path], output: Path, entry: str = "entrypoint") -> bytes:
    """Link object files into ``output`` and return the bytes written."""
    image = link([(p.name, p.read_bytes()) for p in paths], entry)
    output.write_bytes(image)
    return image
