"""The toolchain's example program (C sources in src/, built hello.so) and its Python client."""
