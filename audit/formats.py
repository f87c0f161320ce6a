"""The byte layouts the audit reads, written from the documents alone.

Sources, so that anyone can check each line against them:

- the signed reading: docs/reading-format.md ("Layout", "Decoding rules");
- events: docs/programs.md ("Events": the 9-byte header and the table of every event's fields);
- accounts: docs/programs/registry.md (Meter), docs/programs/energy-token.md (Config),
  docs/programs/trading.md (Market, Order), docs/programs/certificates.md (Mark, Certificate),
  docs/programs/payments.md (Config); SPL Token's Mint (82 bytes) and Account (165 bytes);
- the Ed25519 precompile instruction: Solana's documented layout (u8 count, u8 padding, then per signature
  seven u16: signature offset, signature instruction, public key offset, public key instruction, message
  offset, message size, message instruction; 0xFFFF = this instruction).

Nothing here imports the project's own decoders (gridtokenx.reading, programs.*): the audit is a second,
independent reading of the same specifications, and tests/audit/test_audit_formats.py checks it against
the documents' tables and the reading test vectors.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey

# --- the signed reading (docs/reading-format.md) ------------------------------------------------------

READING_LEN = 60
BASE_UNITS_PER_WH = 10**6  # GRID: 9 decimals, 1 kWh = 10**9, so 1 Wh = 10**6 (docs/programs/energy-token.md)
_READING = struct.Struct("<4sBBH16sQQQQi")
_METER_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,16}")
FLAG_METER_ERROR = 0x04
FLAG_POWER_PRESENT = 0x08


class FormatError(ValueError):
    """Bytes that are not what the documents say they must be; ``code`` names the rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class Reading:
    meter_id: str
    seq: int
    timestamp_ms: int
    import_wh: int
    export_wh: int
    power_w: int
    flags: int

    @property
    def meter_error(self) -> bool:
        return bool(self.flags & FLAG_METER_ERROR)

    @property
    def net_wh(self) -> int:
        """Net generation of the cumulative counters: export - import (negative for a consumer)."""
        return self.export_wh - self.import_wh


def decode_reading(data: bytes) -> Reading:
    """A v1 reading, refused in the documented order: length, prefix, version, length, flags, reserved,
    meter_id, power."""
    if len(data) < 5:
        raise FormatError("length", f"{len(data)} bytes")
    if data[:4] != b"GTXR":
        raise FormatError("prefix", f"{data[:4]!r} is not b'GTXR'")
    if data[4] != 1:
        raise FormatError("version", f"version {data[4]}")
    if len(data) != READING_LEN:
        raise FormatError("length", f"{len(data)} bytes, a v1 reading is {READING_LEN}")
    _, _, flags, reserved, raw_id, seq, ts, imp, exp, power = _READING.unpack(data)
    if flags & 0xF0 or flags & 0x03 == 3:
        raise FormatError("flags", f"flags 0x{flags:02x}")
    if reserved:
        raise FormatError("reserved", f"reserved 0x{reserved:04x}")
    meter_id = raw_id.rstrip(b"\0")
    if not _METER_ID.fullmatch(meter_id):
        raise FormatError("meter_id", f"meter id {raw_id!r}")
    if not flags & FLAG_POWER_PRESENT and power:
        raise FormatError("power", f"power_w {power} without POWER_PRESENT")
    return Reading(meter_id.decode("ascii"), seq, ts, imp, exp, power, flags)


def reading_field_differences(a: bytes, b: bytes) -> list[str]:
    """Which documented fields two 60-byte readings disagree on (for naming a tampered copy)."""
    names = ["magic", "version", "flags", "reserved", "meter_id", "seq", "timestamp_ms", "import_wh", "export_wh",
             "power_w"]
    if len(a) != READING_LEN or len(b) != READING_LEN:
        return ["length"]
    return [n for n, x, y in zip(names, _READING.unpack(a), _READING.unpack(b), strict=True) if x != y]


def meter_id_seed(meter_id: str) -> bytes:
    """The 16-byte NUL-padded id, as in the reading and in the meter PDA's seeds."""
    return meter_id.encode("ascii").ljust(16, b"\0")


# --- events (docs/programs.md, "Events") --------------------------------------------------------------

EVENT_HEADER_LEN = 9
# Wire types: key = 32-byte public key, id = 16-byte NUL-padded meter id, raw32 = 32 bytes as they are.
_WIRE = {"u8": "B", "u16": "H", "u64": "Q", "i64": "q", "key": "32s", "id": "16s", "raw32": "32s"}

# program -> event -> fields after the header, in order. Transcribed from the Events table.
EVENT_FIELDS: dict[str, dict[str, str]] = {
    "registry": {
        "RegistryInitialized": "config:key authority:key settlement_authority:key",
        "UserRegistered": "wallet:key user:key kind:u8 registered_at:i64",
        "MeterRegistered": "meter:key meter_id:id owner:key meter_key:key registered_at:i64",
        "MeterStatusChanged": "meter:key meter_id:id owner:key previous_status:u8 status:u8",
        "MeterKeyChanged": "meter:key meter_id:id owner:key previous_key:key meter_key:key",
        "MeterReassigned": "meter:key meter_id:id previous_owner:key owner:key meter_key:key previous_status:u8 "
                           "status:u8",
        "SettlementRecorded": "meter:key meter_id:id owner:key seq:u64 timestamp_ms:u64 import_wh:u64 export_wh:u64 "
                              "settled_net_generation_wh:i64 baseline_net_generation_wh:i64 settlement_count:u64",
    },
    "energy_token": {
        "EnergyTokenInitialized": "config:key registry_program:key mint:key authority:key",
        "BaselineRecorded": "meter:key meter_id:id owner:key seq:u64 timestamp_ms:u64 import_wh:u64 export_wh:u64 "
                            "baseline_net_generation_wh:i64",
        "GridMinted": "meter:key meter_id:id owner:key destination:key seq:u64 timestamp_ms:u64 import_wh:u64 "
                      "export_wh:u64 previous_mark:i64 mark:i64 amount:u64",
        "GridConsumed": "holder:key account:key amount:u64 balance:u64 timestamp:i64",
    },
    "certificates": {
        "CertificatesInitialized": "config:key governance:key registry_program:key validity_seconds:i64",
        "CertificateIssued": "certificate:key meter:key holder:key index:u64 from_wh:u64 to_wh:u64 status:u8 "
                             "timestamp:i64 expires_at:i64 meter_id:id",
        "CertificateValidated": "certificate:key meter:key holder:key index:u64 from_wh:u64 to_wh:u64 status:u8 "
                                "timestamp:i64 governance:key",
        "CertificateTransferred": "certificate:key meter:key holder:key index:u64 from_wh:u64 to_wh:u64 status:u8 "
                                  "timestamp:i64 previous_holder:key",
        "CertificateRetired": "certificate:key meter:key holder:key index:u64 from_wh:u64 to_wh:u64 status:u8 "
                              "timestamp:i64",
        "CertificateRevoked": "certificate:key meter:key holder:key index:u64 from_wh:u64 to_wh:u64 status:u8 "
                              "timestamp:i64 reason:u16 governance:key",
        "CertificateExpired": "certificate:key meter:key holder:key index:u64 from_wh:u64 to_wh:u64 status:u8 "
                              "timestamp:i64",
    },
    "trading": {
        "MarketInitialized": "market:key authority:key grid_mint:key thbc_mint:key fee_account:key fee_bps:u16 "
                             "grid_decimals:u8 thbc_decimals:u8",
        "MarketUpdated": "market:key authority:key previous_fee_account:key fee_account:key previous_fee_bps:u16 "
                         "fee_bps:u16",
        "OrderCreated": "order:key market:key seller:key vault:key seller_grid:key order_id:u64 amount:u64 price:u64 "
                        "expires_at:i64 created_at:i64 fee_bps:u16 max_fee_bps:u16",
        "OrderFilled": "order:key seller:key buyer:key amount:u64 cost:u64 fee:u64 remaining:u64 proceeds:u64 "
                       "state:u8",
        "TradeExecuted": "order:key seller:key buyer:key grid_recipient:key fee_account:key amount:u64 "
                         "grid_delivered:u64 price:u64 cost:u64 fee:u64 timestamp:i64",
        "OrderCancelled": "order:key seller:key seller_grid:key refunded:u64 remaining:u64 timestamp:i64",
        "OrderExpired": "order:key seller:key seller_grid:key refunded:u64 remaining:u64 timestamp:i64",
        "OrderClosed": "order:key seller:key state:u8 lamports:u64",
    },
    "payments": {
        "PaymentsInitialized": "config:key authority:key operator:key mint:key mint_authority:key",
        "PaymentIssued": "deposit:key reference:raw32 payer:key destination:key amount:u64 operator:key "
                         "timestamp:i64",
        "Redeemed": "holder:key account:key amount:u64 balance:u64 payout_reference:raw32 timestamp:i64",
        "OperatorChanged": "config:key previous_operator:key operator:key",
    },
}
EVENT_VERSION = 1


@dataclass(frozen=True)
class EventSpec:
    program: str
    name: str
    tag: bytes
    fields: tuple[tuple[str, str], ...]  # (name, wire type)
    size: int

    @property
    def struct(self) -> struct.Struct:
        return struct.Struct("<" + "".join(_WIRE[wire] for _, wire in self.fields))


def event_tag(name: str) -> bytes:
    return hashlib.sha256(b"gridtokenx:event:" + name.encode("ascii")).digest()[:8]


def _specs() -> dict[str, dict[bytes, EventSpec]]:
    out: dict[str, dict[bytes, EventSpec]] = {}
    for program, events in EVENT_FIELDS.items():
        for name, text in events.items():
            fields = tuple((f.split(":")[0], f.split(":")[1]) for f in text.split())
            size = EVENT_HEADER_LEN + struct.calcsize("<" + "".join(_WIRE[w] for _, w in fields))
            out.setdefault(program, {})[event_tag(name)] = EventSpec(program, name, event_tag(name), fields, size)
    return out


EVENT_SPECS = _specs()


@dataclass(frozen=True)
class Event:
    """One decoded event: its name and fields (keys as Pubkey, meter ids as str, raw32 as bytes)."""

    program: str
    name: str
    fields: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def decode_event(program: str, data: bytes) -> Event:
    """An event logged by ``program``; FormatError if it is none of that program's documented events."""
    spec = EVENT_SPECS.get(program, {}).get(data[:8])
    if spec is None:
        raise FormatError("event", f"{program}: unknown event tag {data[:8].hex()}")
    if len(data) < EVENT_HEADER_LEN or data[8] != EVENT_VERSION:
        raise FormatError("event", f"{program}: {spec.name} version {data[8:9].hex()}")
    if len(data) != spec.size:
        raise FormatError("event", f"{program}: {spec.name} is {len(data)} bytes, documented {spec.size}")
    values = spec.struct.unpack_from(data, EVENT_HEADER_LEN)
    fields: dict[str, Any] = {}
    for (name, wire), value in zip(spec.fields, values, strict=True):
        if wire == "key":
            fields[name] = Pubkey.from_bytes(value)
        elif wire == "id":
            fields[name] = value.rstrip(b"\0").decode("ascii", "replace")
        else:
            fields[name] = value
    return Event(program, spec.name, fields)


# --- accounts -----------------------------------------------------------------------------------------

ACCOUNT_VERSION = 2  # registry, certificates, trading: canonical-PDA accounts (docs/programs.md "Changes")


def _key(data: bytes, at: int) -> Pubkey:
    return Pubkey.from_bytes(data[at:at + 32])


@dataclass(frozen=True)
class MeterAccount:
    """docs/programs/registry.md, Meter: PDA ["meter", meter id (16 bytes)], 160 bytes, discriminator 0x12."""

    bump: int
    status: int
    has_reading: bool
    owner: Pubkey
    meter_key: bytes
    meter_id_raw: bytes
    last_seq: int
    last_timestamp_ms: int
    last_import_wh: int
    last_export_wh: int
    settled_net_generation_wh: int
    registered_at: int
    settlement_count: int
    baseline_net_generation_wh: int
    baseline_timestamp_ms: int

    LEN = 160
    DISCRIMINATOR = 0x12

    @property
    def meter_id(self) -> str:
        return self.meter_id_raw.rstrip(b"\0").decode("ascii", "replace")

    @classmethod
    def decode(cls, data: bytes) -> MeterAccount:
        if len(data) != cls.LEN or data[0] != cls.DISCRIMINATOR or data[1] != ACCOUNT_VERSION:
            raise FormatError("meter", f"{len(data)} bytes, discriminator/version {data[:2].hex()}")
        numbers = struct.unpack_from("<QQQQqqQqQ", data, 88)
        return cls(data[2], data[3], bool(data[4]), _key(data, 8), bytes(data[40:72]), bytes(data[72:88]),
                   *numbers)


@dataclass(frozen=True)
class OrderAccount:
    """docs/programs/trading.md, Order: PDA ["order", seller, order_id u64], 159 bytes, discriminator 2."""

    bump: int
    vault_bump: int
    state: int  # 1 Active, 2 PartiallyFilled, 3 Filled, 4 Cancelled, 5 Expired
    market: Pubkey
    seller: Pubkey
    vault: Pubkey
    order_id: int
    amount: int
    remaining: int
    price: int
    expires_at: int
    created_at: int
    proceeds: int
    fee_bps: int

    LEN = 159
    DISCRIMINATOR = 2
    OPEN = (1, 2)

    @classmethod
    def decode(cls, data: bytes) -> OrderAccount:
        if len(data) != cls.LEN or data[0] != cls.DISCRIMINATOR or data[1] != ACCOUNT_VERSION:
            raise FormatError("order", f"{len(data)} bytes, discriminator/version {data[:2].hex()}")
        numbers = struct.unpack_from("<QQQQqqQH", data, 101)
        return cls(data[2], data[3], data[4], _key(data, 5), _key(data, 37), _key(data, 69), *numbers)


@dataclass(frozen=True)
class CertificateAccount:
    """docs/programs/certificates.md, Certificate: PDA ["cert", meter, index u64], 128 bytes, 0x32."""

    bump: int
    status: int
    meter: Pubkey
    holder: Pubkey
    index: int
    from_wh: int
    to_wh: int

    LEN = 128
    DISCRIMINATOR = 0x32

    @classmethod
    def decode(cls, data: bytes) -> CertificateAccount:
        if len(data) != cls.LEN or data[0] != cls.DISCRIMINATOR or data[1] != ACCOUNT_VERSION:
            raise FormatError("certificate", f"{len(data)} bytes, discriminator/version {data[:2].hex()}")
        index, from_wh, to_wh = struct.unpack_from("<QQQ", data, 72)
        return cls(data[2], data[3], _key(data, 8), _key(data, 40), index, from_wh, to_wh)


@dataclass(frozen=True)
class MarkAccount:
    """docs/programs/certificates.md, Mark: PDA ["mark", meter], 56 bytes, discriminator 0x31."""

    bump: int
    meter: Pubkey
    certified_up_to_wh: int
    next_index: int

    LEN = 56
    DISCRIMINATOR = 0x31

    @classmethod
    def decode(cls, data: bytes) -> MarkAccount:
        if len(data) != cls.LEN or data[0] != cls.DISCRIMINATOR or data[1] != ACCOUNT_VERSION:
            raise FormatError("mark", f"{len(data)} bytes, discriminator/version {data[:2].hex()}")
        return cls(data[2], _key(data, 8), *struct.unpack_from("<QQ", data, 40))


def energy_config(data: bytes) -> tuple[Pubkey, Pubkey]:
    """docs/programs/energy-token.md, Config (104 bytes, 0x20): (registry program, GRID mint)."""
    if len(data) != 104 or data[0] != 0x20:
        raise FormatError("config", f"energy-token config: {len(data)} bytes, discriminator {data[:1].hex()}")
    return _key(data, 8), _key(data, 40)


def market_mints(data: bytes) -> tuple[Pubkey, Pubkey]:
    """docs/programs/trading.md, Market (135 bytes, discriminator 1): (GRID mint, THBC mint)."""
    if len(data) != 135 or data[0] != 1:
        raise FormatError("market", f"market: {len(data)} bytes, discriminator {data[:1].hex()}")
    return _key(data, 39), _key(data, 71)


def payments_mint(data: bytes) -> Pubkey:
    """docs/programs/payments.md, Config (136 bytes, 0x40): the THBC mint."""
    if len(data) != 136 or data[0] != 0x40:
        raise FormatError("config", f"payments config: {len(data)} bytes, discriminator {data[:1].hex()}")
    return _key(data, 72)


TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")


@dataclass(frozen=True)
class Mint:
    """SPL Token Mint, 82 bytes: COption mint authority [0..36], supply [36..44], decimals [44],
    initialised [45], COption freeze authority [46..82]."""

    mint_authority: Pubkey | None
    supply: int
    decimals: int
    freeze_authority: Pubkey | None

    @classmethod
    def decode(cls, data: bytes) -> Mint:
        if len(data) != 82 or not data[45]:
            raise FormatError("mint", f"{len(data)} bytes, not an initialised SPL Token mint")
        authority = _key(data, 4) if struct.unpack_from("<I", data, 0)[0] else None
        freeze = _key(data, 50) if struct.unpack_from("<I", data, 46)[0] else None
        return cls(authority, struct.unpack_from("<Q", data, 36)[0], data[44], freeze)


@dataclass(frozen=True)
class TokenAccount:
    """SPL Token Account, 165 bytes: mint [0..32], owner [32..64], amount [64..72], state [108]."""

    mint: Pubkey
    owner: Pubkey
    amount: int

    @classmethod
    def decode(cls, data: bytes) -> TokenAccount:
        if len(data) != 165 or data[108] == 0:
            raise FormatError("token", f"{len(data)} bytes, not an initialised SPL Token account")
        return cls(_key(data, 0), _key(data, 32), struct.unpack_from("<Q", data, 64)[0])


# --- the Ed25519 precompile instruction -------------------------------------------------------------

ED25519_PROGRAM_ID = Pubkey.from_string("Ed25519SigVerify111111111111111111111111111")
_SELF = 0xFFFF


@dataclass(frozen=True)
class Ed25519Entry:
    public_key: bytes
    signature: bytes
    message: bytes


def ed25519_entries(index: int, instructions: list[bytes]) -> list[Ed25519Entry]:
    """The (key, signature, message) triples the precompile instruction at ``index`` verifies; each part
    may sit in another instruction's data (its index) or in this one's (0xFFFF)."""
    data = instructions[index]
    if len(data) < 2:
        return []
    out = []
    for n in range(data[0]):
        at = 2 + 14 * n
        if at + 14 > len(data):
            break
        sig_off, sig_ix, pk_off, pk_ix, msg_off, msg_size, msg_ix = struct.unpack_from("<7H", data, at)

        def part(ix: int, offset: int, size: int) -> bytes:
            source = data if ix == _SELF else (instructions[ix] if ix < len(instructions) else b"")
            return bytes(source[offset:offset + size])

        out.append(Ed25519Entry(part(pk_ix, pk_off, 32), part(sig_ix, sig_off, 64), part(msg_ix, msg_off, msg_size)))
    return out


# --- PDAs ---------------------------------------------------------------------------------------------

def canonical(seeds: list[bytes], program: Pubkey) -> tuple[Pubkey, int]:
    """find_program_address: the highest bump whose address is off the curve."""
    return Pubkey.find_program_address(seeds, program)
