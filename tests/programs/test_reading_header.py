"""The C mirror of the reading format (programs/include/gtx_reading.h) agrees with the vectors.

The header is compiled natively here (the same source the BPF programs include) so every vector, valid
and invalid, is checked against it without a chain in the loop."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "reading-v1.json").read_text())
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang-19")

# Status names in the header's enum order, matched to the Python decoder's error codes.
# parse(reading) -> (status, [seq, timestamp_ms, import_wh, export_wh], flags, meter id bytes)
Parser = Callable[[bytes], tuple[int, list[int], int, bytes]]
STATUS_FOR_CODE = {"length": 1, "prefix": 2, "version": 3, "flags": 4, "reserved": 5, "meter_id": 6, "power": 7}

WRAPPER = r"""
#include "gtx_reading.h"
int parse(const uint8_t *d, uint64_t n, uint64_t *out4, uint8_t *flags, uint8_t *id16) {
  gtx_reading_t r;
  int s = gtx_reading_parse(d, n, &r);
  if (s == GTX_READING_OK || s == GTX_READING_METER_ERROR) {
    out4[0] = r.seq; out4[1] = r.timestamp_ms; out4[2] = r.import_wh; out4[3] = r.export_wh;
    *flags = r.flags;
    for (int i = 0; i < 16; i++) id16[i] = r.meter_id[i];
  }
  return s;
}
"""


@pytest.fixture(scope="module")
def parser(tmp_path_factory: pytest.TempPathFactory) -> Parser:
    if CC is None:
        pytest.fail("no C compiler found (cc, gcc or clang-19); .ci/setup installs clang-19")
    work = tmp_path_factory.mktemp("hdr")
    (work / "wrap.c").write_text(WRAPPER)
    lib = work / "libreading.so"
    subprocess.run(
        [CC, "-O2", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{ROOT / 'programs' / 'include'}",
         str(work / "wrap.c"), "-o", str(lib)],
        check=True,
    )
    so = ctypes.CDLL(str(lib))
    so.parse.restype = ctypes.c_int
    so.parse.argtypes = [ctypes.c_char_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64),
                         ctypes.POINTER(ctypes.c_uint8), ctypes.c_char_p]

    def run(data: bytes) -> tuple[int, list[int], int, bytes]:
        out = (ctypes.c_uint64 * 4)()
        flags = ctypes.c_uint8()
        ident = ctypes.create_string_buffer(16)
        status = so.parse(data, len(data), out, ctypes.byref(flags), ident)
        return status, list(out), flags.value, ident.raw

    return run


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_header_parses_valid_vectors(parser: Parser, vec: dict[str, Any]) -> None:
    f = vec["fields"]
    status, (seq, ts, imp, exp), flags, ident = parser(bytes.fromhex(vec["bytes_hex"]))
    assert status == (8 if f["meter_error"] else 0)
    assert (seq, ts, imp, exp) == (f["seq"], f["timestamp_ms"], f["import_wh"], f["export_wh"])
    assert ident.rstrip(b"\0").decode() == f["meter_id"]
    assert bool(flags & 0x04) == f["meter_error"]


@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=lambda v: v["name"])
def test_header_refuses_invalid_vectors_with_the_same_cause(parser: Parser, vec: dict[str, Any]) -> None:
    status, *_ = parser(bytes.fromhex(vec["bytes_hex"]))
    assert status == STATUS_FOR_CODE[vec["error"]]
