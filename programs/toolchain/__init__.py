"""Build tooling for the on-chain programs: ``build`` (clang-19 → objects) and ``linker`` (objects → SBPF v0
shared object). See docs/programs.md, "Toolchain"."""
