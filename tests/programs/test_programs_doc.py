"""docs/programs.md's instruction tables agree with the Python builders (and so with the programs, which
the other tests run through those builders): every instruction is listed, with each account in order and
its [writable, signer] flags, and data byte ranges that cover the instruction data exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from solders.instruction import Instruction
from solders.pubkey import Pubkey

from programs.certificates import client as certs
from programs.energy_token import client as energy
from programs.payments import client as payments
from programs.registry import client as registry
from programs.trading import client as trading

DOC = Path(__file__).resolve().parents[2] / "docs" / "programs.md"
PROGRAM_ID = Pubkey.new_unique()


def _key() -> Pubkey:
    return Pubkey.new_unique()


def _builders() -> dict[str, dict[int, Instruction]]:
    """One instruction per discriminator and program, built with arbitrary keys."""
    pid = PROGRAM_ID
    return {
        "registry": {
            0: registry.initialize(pid, _key(), _key()),
            1: registry.register_user(pid, _key(), registry.UserKind.PROSUMER),
            2: registry.register_meter(pid, _key(), "SDM630-000042", bytes(32)),
            3: registry.set_meter_status(pid, _key(), _key(), registry.MeterStatus.ACTIVE),
            4: registry.record_settlement(pid, _key(), _key(), seq=1, timestamp_ms=2, import_wh=3, export_wh=4,
                                          settled_net_generation_wh=1),
            5: registry.set_meter_key(pid, _key(), _key(), bytes(32)),
            6: registry.reassign_meter(pid, _key(), _key(), _key(), _key(), bytes(32)),
        },
        "energy_token": {
            0: energy.initialize(pid, _key(), _key(), _key()),
            1: energy.settle_and_mint(pid, _key(), _key(), _key(), bytes(8) + b"SDM630-000042".ljust(16, b"\0")
                                      + bytes(36)),
            2: energy.consume(pid, _key(), _key(), 10),
        },
        "certificates": {
            0: certs.initialize(pid, _key(), _key(), _key()),
            1: certs.issue(pid, _key(), _key(), 0, 1_000),
            2: certs.validate(pid, _key(), _key()),
            3: certs.retire(pid, _key(), _key()),
            4: certs.revoke(pid, _key(), _key(), 1),
            5: certs.expire(pid, _key()),
            6: certs.transfer(pid, _key(), _key(), _key()),
        },
        "trading": {
            0: trading.initialize_market(pid, _key(), _key(), _key(), _key(), 25),
            1: trading.create_order(pid, _key(), _key(), _key(), 1, 10, 20, 30, max_fee_bps=25),
            2: trading.buy(pid, _key(), _key(), 1, 10, buyer_grid=_key(), buyer_thbc=_key(), seller_thbc=_key(),
                           fee_account=_key()),
            3: trading.cancel_order(pid, _key(), 1, _key()),
            4: trading.expire_order(pid, _key(), 1, _key()),
            5: trading.close_order(pid, _key(), 1),
            6: trading.update_market(pid, _key(), _key(), 25),
        },
        "payments": {
            0: payments.initialize(pid, _key(), _key(), _key()),
            1: payments.issue(pid, _key(), _key(), _key(), "KBANK-1", 10),
            2: payments.redeem(pid, _key(), _key(), 10, "PAYOUT-1"),
            3: payments.set_operator(pid, _key(), _key()),
        },
    }


def _documented() -> dict[str, dict[int, tuple[str, str]]]:
    """program → discriminator → (accounts cell, data cell) from the "Programs" section."""
    text = DOC.read_text()
    section = text[text.index("\n## Programs\n"):text.index("\n## Compute units\n")]
    out: dict[str, dict[int, tuple[str, str]]] = {}
    for block in section.split("\n### ")[1:]:
        name = block.split("\n", 1)[0].strip()
        rows = re.findall(r"^\| (\d+) \| [^|]+ \| ([^|]+) \| ([^|]+) \|$", block, re.M)
        out[name] = {int(disc): (accounts.strip(), data.strip()) for disc, accounts, data in rows}
    return out


def _flags(cell: str) -> list[tuple[int, bool, bool]]:
    """ "0 authority [w, s] (pays), 1 config [], 2 System program" → [(0, True, True), (1, False, False), ...]"""
    plain = re.sub(r"\([^)]*\)", "", cell)
    items = re.split(r",\s*(?=\d+ )", plain)
    out = []
    for item in items:
        m = re.fullmatch(r"\s*(\d+) [^\[]+?(?:\[([ws, ]*)\])?\s*", item)
        assert m is not None, f"cannot read account {item!r} in {cell!r}"
        flags = {f.strip() for f in (m.group(2) or "").split(",") if f.strip()}
        out.append((int(m.group(1)), "w" in flags, "s" in flags))
    return out


def _byte_ranges(cell: str) -> list[tuple[int, int]]:
    """ "`[1]` bump, `[2..34]` key" → [(0, 1), (1, 2), (2, 34)] (the discriminator byte included)."""
    ranges = [(0, 1)]
    if cell != "—":
        for start, end in re.findall(r"`\[(\d+)(?:\.\.(\d+))?\]`", cell):
            ranges.append((int(start), int(end) if end else int(start) + 1))
    return sorted(ranges)


BUILDERS = _builders()
DOCUMENTED = _documented()


def test_every_program_and_instruction_is_documented() -> None:
    assert {name: sorted(ixs) for name, ixs in DOCUMENTED.items()} == {
        name: sorted(ixs) for name, ixs in BUILDERS.items()}


@pytest.mark.parametrize(("program", "disc"), [(p, d) for p, ixs in BUILDERS.items() for d in ixs])
def test_accounts_and_data_match_the_builder(program: str, disc: int) -> None:
    ix = BUILDERS[program][disc]
    accounts, data = DOCUMENTED[program][disc]
    assert ix.data[0] == disc
    expected = [(i, meta.is_writable, meta.is_signer) for i, meta in enumerate(ix.accounts)]
    assert _flags(accounts) == expected, accounts
    ranges = _byte_ranges(data)
    # The documented ranges tile the instruction data: no gap, no overlap, nothing past its end.
    assert [start for start, _ in ranges] == [0] + [end for _, end in ranges[:-1]], data
    assert ranges[-1][1] == len(ix.data), (data, len(ix.data))
