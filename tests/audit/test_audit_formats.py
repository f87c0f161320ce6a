"""The audit's own decoders (audit/formats.py) agree with the documents they were written from: the reading
test vectors of docs/reading-format.md, the Events table of docs/programs.md, and the account layouts of
docs/programs/*.md — each compared with the document's text, not with the project's decoders."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from audit.formats import (
    EVENT_FIELDS,
    EVENT_HEADER_LEN,
    EVENT_SPECS,
    CertificateAccount,
    FormatError,
    MarkAccount,
    MeterAccount,
    OrderAccount,
    decode_event,
    decode_reading,
    ed25519_entries,
    event_tag,
    reading_field_differences,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "reading-v1.json").read_text())
_WIDTH = {"u8": 1, "u16": 2, "u64": 8, "i64": 8, "key": 32, "id": 16, "raw32": 32}


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_reading_vectors_decode_to_their_fields(vector: dict[str, object]) -> None:
    reading = decode_reading(bytes.fromhex(str(vector["bytes_hex"])))
    fields = vector["fields"]
    assert isinstance(fields, dict)
    assert (reading.meter_id, reading.seq, reading.timestamp_ms, reading.import_wh, reading.export_wh) == (
        fields["meter_id"], fields["seq"], fields["timestamp_ms"], fields["import_wh"], fields["export_wh"])
    assert reading.meter_error == fields["meter_error"]
    assert reading.power_w == (fields["power_w"] or 0)


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_reading_vectors_are_refused_with_their_code(vector: dict[str, str]) -> None:
    with pytest.raises(FormatError) as refused:
        decode_reading(bytes.fromhex(vector["bytes_hex"]))
    assert refused.value.code == vector["error"]


def test_reading_field_differences_name_the_changed_field() -> None:
    data = bytes.fromhex(str(VECTORS["valid"][1]["bytes_hex"]))
    changed = data[:48] + struct.pack("<Q", 1) + data[56:]
    assert reading_field_differences(data, changed) == ["export_wh"]
    assert reading_field_differences(data, data) == []


def _documented_events() -> dict[tuple[str, str], tuple[int, list[tuple[str, int, int]]]]:
    """(program, event) → (size, [(field, start, end)]) from docs/programs.md's Events table."""
    text = (ROOT / "docs" / "programs.md").read_text()
    section = text[text.index("\n## Events\n"):text.index("\n## Changes\n")]
    out = {}
    for program, name, version, size, fields in re.findall(
            r"^\| (\w+) \| (\w+) \| (\d+) \| (\d+) \| [^|]+ \| ([^|]+) \|$", section, re.M):
        assert version == "1"
        ranges = [(f, int(a), int(b)) for a, b, f in re.findall(r"`\[(\d+)\.\.(\d+)\]` (\w+)", fields)]
        ranges += [(f, int(a), int(a) + 1) for a, f in re.findall(r"`\[(\d+)\]` (\w+)", fields)]
        out[(program, name)] = (int(size), sorted(ranges, key=lambda r: r[1]))
    return out


DOCUMENTED = _documented_events()


def test_every_documented_event_of_our_programs_is_known_to_the_audit() -> None:
    documented = {key for key in DOCUMENTED if key[0] != "hello"}
    known = {(program, name) for program, events in EVENT_FIELDS.items() for name in events}
    assert known == documented


@pytest.mark.parametrize("program,name", [(p, n) for p, events in EVENT_FIELDS.items() for n in events])
def test_event_layout_matches_the_events_table(program: str, name: str) -> None:
    size, ranges = DOCUMENTED[(program, name)]
    spec = EVENT_SPECS[program][event_tag(name)]
    assert spec.size == size
    at, mine = EVENT_HEADER_LEN, []
    for field, wire in spec.fields:
        mine.append((field, at, at + _WIDTH[wire]))
        at += _WIDTH[wire]
    assert mine == ranges


def test_an_event_round_trips_and_other_versions_or_lengths_are_refused() -> None:
    spec = EVENT_SPECS["energy_token"][event_tag("GridConsumed")]
    holder, account = Pubkey.new_unique(), Pubkey.new_unique()
    data = spec.tag + b"\x01" + bytes(holder) + bytes(account) + struct.pack("<QQq", 7, 3, 1_700_000_000)
    event = decode_event("energy_token", data)
    assert (event.name, event["holder"], event["account"], event["amount"], event["balance"]) == (
        "GridConsumed", holder, account, 7, 3)
    for bad in (data[:8] + b"\x02" + data[9:], data + b"\0"):
        with pytest.raises(FormatError):
            decode_event("energy_token", bad)
    with pytest.raises(FormatError):
        decode_event("registry", data)  # the energy token's event logged by the registry is none of its own


def _layout_rows(doc: str, heading: str) -> dict[str, tuple[int, int]]:
    """field → (start, end) from one account table of docs/programs/<doc>.md."""
    text = (ROOT / "docs" / "programs" / doc).read_text()
    block = text[text.index(heading):]
    block = block[:block.index("\n\n", block.index("|"))]
    out = {}
    for start, end, field in re.findall(r"^\| (\d+)(?:\.\.(\d+))? \| (\w+)", block, re.M):
        out[field] = (int(start), int(end) if end else int(start) + 1)
    return out


def test_account_layouts_match_the_program_documents() -> None:
    meter = _layout_rows("registry.md", "### Meter")
    assert meter["owner"] == (8, 40) and meter["last_seq"] == (88, 96)
    assert meter["settled_net_generation_wh"] == (120, 128) and meter["baseline_net_generation_wh"] == (144, 152)
    cert = _layout_rows("certificates.md", "### Certificate")
    assert (cert["meter"], cert["holder"], cert["index"], cert["from_wh"], cert["to_wh"]) == (
        (8, 40), (40, 72), (72, 80), (80, 88), (88, 96))
    mark = _layout_rows("certificates.md", "### Mark")
    assert (mark["certified_up_to_wh"], mark["next_index"]) == ((40, 48), (48, 56))
    assert (MeterAccount.LEN, CertificateAccount.LEN, MarkAccount.LEN, OrderAccount.LEN) == (160, 128, 56, 159)


def test_ed25519_entries_follow_offsets_into_other_instructions() -> None:
    key, sig, msg = b"k" * 32, b"s" * 64, b"m" * 60
    own = struct.pack("<BB7H", 1, 0, 16 + 32, 0xFFFF, 16, 0xFFFF, 16 + 96, 60, 0xFFFF) + key + sig + msg
    elsewhere = struct.pack("<BB7H", 1, 0, 0, 1, 64, 1, 96, 60, 1)
    other = sig + key + msg
    [a] = ed25519_entries(0, [own])
    [b] = ed25519_entries(0, [elsewhere, other])
    assert (a.public_key, a.signature, a.message) == (key, sig, msg) == (b.public_key, b.signature, b.message)
