"""The chain's state against the replay: accounts, supplies and escrow as they stand at the snapshot.

- registry meters: each at the canonical PDA of its id (``["meter", id]``, stored bump canonical), no id in two
  accounts, each with a MeterRegistered event, and its marks, counters, key, owner and status equal to what
  the replay of its signed readings leaves;
- certificates: each at the canonical PDA ``["cert", meter, index]`` with a CertificateIssued event of the
  same range; per meter no two ranges overlap (revoked and expired ones included: their ranges are never
  released) and none reaches beyond the settled generation since the baseline; the mark agrees;
- orders: each at its canonical PDA with its canonical vault; an open order's vault is a GRID token account
  held by the order holding exactly the order's remaining amount; its events agree;
- GRID: the mint authority is the energy token's PDA, no freeze authority, supply + consumed = the GRID the
  settled readings account for; THBC: the mint authority is the payments PDA, supply = issued - redeemed.
"""

from __future__ import annotations

import struct
from collections import defaultdict

from solders.pubkey import Pubkey

from audit.formats import (
    TOKEN_PROGRAM_ID,
    CertificateAccount,
    FormatError,
    MarkAccount,
    MeterAccount,
    Mint,
    OrderAccount,
    TokenAccount,
    canonical,
)
from audit.ledger import Ledger
from audit.source import AccountRecord

__all__ = ["check_certificates", "check_meters", "check_orders", "check_supplies"]


def check_meters(ledger: Ledger, records: list[AccountRecord]) -> dict[Pubkey, MeterAccount]:
    add = ledger.add
    assert ledger.registry is not None
    by_id: defaultdict[str, list[Pubkey]] = defaultdict(list)
    found: dict[Pubkey, MeterAccount] = {}
    for record in records:
        if not record.data or record.data[0] != MeterAccount.DISCRIMINATOR:
            continue
        try:
            meter = MeterAccount.decode(record.data)
        except FormatError as exc:
            add("meter-account", f"a registry account with the meter discriminator is no documented meter: {exc}",
                account=record.address)
            continue
        found[record.address] = meter
        by_id[meter.meter_id].append(record.address)
        address, bump = canonical([b"meter", meter.meter_id_raw], ledger.registry)
        if record.address != address:
            add("meter-account", f"meter account for id {meter.meter_id} is not the canonical address of its id "
                                 f"({address})", account=record.address)
        elif meter.bump != bump:
            add("meter-account", f"meter {meter.meter_id} stores bump {meter.bump}, canonical is {bump}",
                account=record.address)
    for meter_id, addresses in sorted(by_id.items()):
        if len(addresses) > 1:
            others = sorted(str(x) for x in addresses)
            add("meter-account", f"meter id {meter_id} appears in {len(addresses)} accounts: {', '.join(others)}",
                account=others[0])
    ledger.report.figures["meter_accounts"] = len(found)
    # Each meter's state as the replay of its signed readings leaves it.
    for meter_id, state in sorted(ledger.meters.items()):
        account = found.get(state.address)
        if account is None:
            add("meter-state", f"meter {meter_id} was registered, but its account is gone", account=state.address)
            continue
        expected = {"settled mark": (account.settled_net_generation_wh, state.mark),
                    "baseline": (account.baseline_net_generation_wh, state.baseline),
                    "settlement count": (account.settlement_count, state.count),
                    "import counter": (account.last_import_wh, state.last_import),
                    "export counter": (account.last_export_wh, state.last_export),
                    "meter key": (account.meter_key.hex(), state.key.hex()),
                    "owner": (account.owner, state.owner), "status": (account.status, state.status)}
        if state.last_seq is not None:
            expected["last seq"] = (account.last_seq, state.last_seq)
        wrong = [f"{k} {got} (replay: {want})" for k, (got, want) in expected.items() if got != want]
        if wrong:
            add("meter-state", f"meter {meter_id}'s account disagrees with its settled readings: " + ", ".join(wrong),
                account=state.address)
    registered = {m.address for m in ledger.meters.values()}
    for address, meter in found.items():
        if address not in registered:
            add("meter-account", f"meter account for id {meter.meter_id} has no MeterRegistered event",
                account=address)
    return found


def check_certificates(ledger: Ledger, records: list[AccountRecord], meters: dict[Pubkey, MeterAccount]) -> None:
    add = ledger.add
    program = ledger.programs.certificates
    assert program is not None
    certificates: dict[Pubkey, CertificateAccount] = {}
    marks: dict[Pubkey, tuple[Pubkey, MarkAccount]] = {}
    for record in records:
        kind = record.data[:1]
        try:
            if kind == bytes([CertificateAccount.DISCRIMINATOR]):
                certificates[record.address] = CertificateAccount.decode(record.data)
            elif kind == bytes([MarkAccount.DISCRIMINATOR]):
                mark = MarkAccount.decode(record.data)
                marks[mark.meter] = (record.address, mark)
        except FormatError as exc:
            add("certificate", f"undocumented certificates-program account: {exc}", account=record.address)
    generation = {m.address: m.mark - m.baseline for m in ledger.meters.values()}
    by_meter: defaultdict[Pubkey, list[tuple[Pubkey, CertificateAccount]]] = defaultdict(list)
    for address, cert in certificates.items():
        by_meter[cert.meter].append((address, cert))
        expected, bump = canonical([b"cert", bytes(cert.meter), struct.pack("<Q", cert.index)], program)
        if address != expected or cert.bump != bump:
            add("certificate", f"certificate #{cert.index} is not at the canonical address of its meter and index "
                               f"({expected})", account=address)
        if cert.from_wh >= cert.to_wh:
            add("certificate", f"certificate #{cert.index} covers the empty range [{cert.from_wh}, {cert.to_wh})",
                  account=address)
        issued = ledger.issued_certificates.get(address)
        if issued is None:
            add("certificate", f"certificate #{cert.index} of meter {cert.meter} has no CertificateIssued event",
                account=address)
        elif issued[:4] != (cert.meter, cert.index, cert.from_wh, cert.to_wh):
            add("certificate", f"certificate #{cert.index}: account covers [{cert.from_wh}, {cert.to_wh}), its "
                                 f"CertificateIssued event [{issued[2]}, {issued[3]})", signature=issued[4],
                  account=address)
    for address, issued in ledger.issued_certificates.items():
        if address not in certificates:
            add("certificate", "a certificate the chain issued has no account (certificates are never closed)",
                signature=issued[4], account=address)
    certified = 0
    for meter, certs in by_meter.items():
        certs.sort(key=lambda c: (c[1].from_wh, c[1].to_wh))
        name = meters[meter].meter_id if meter in meters else str(meter)
        furthest: tuple[Pubkey, CertificateAccount] | None = None
        for address, cert in certs:
            if furthest is not None and cert.from_wh < furthest[1].to_wh:
                add("certificate", f"meter {name}: certificate #{cert.index} [{cert.from_wh}, {cert.to_wh}) "
                                     f"overlaps #{furthest[1].index} [{furthest[1].from_wh}, {furthest[1].to_wh}) "
                                     f"({furthest[0]}): the same generation certified twice", account=address)
            if furthest is None or cert.to_wh > furthest[1].to_wh:
                furthest = (address, cert)
        top = max(c.to_wh for _, c in certs)
        certified += sum(c.to_wh - c.from_wh for _, c in certs)
        settled = generation.get(meter)
        if settled is None and meter in meters:
            settled = meters[meter].settled_net_generation_wh - meters[meter].baseline_net_generation_wh
        if settled is None:
            add("certificate", f"certificates of {meter}, which is no registry meter", account=meter)
        elif top > settled:
            worst = max(certs, key=lambda c: c[1].to_wh)
            add("certificate", f"meter {name}: certificate #{worst[1].index} reaches {top} Wh, beyond the "
                               f"{settled} Wh of settled generation since the baseline", account=worst[0])
        entry = marks.get(meter)
        if entry is None:
            add("certificate", f"meter {name} has certificates but no mark account", account=meter)
        elif (entry[1].certified_up_to_wh, entry[1].next_index) != (top, len(certs)):
            add("certificate", f"meter {name}: mark says certified up to {entry[1].certified_up_to_wh} Wh with "
                               f"next index {entry[1].next_index}; its {len(certs)} certificates reach {top} Wh",
                account=entry[0])
    ledger.report.figures["certificates"] = len(certificates)
    ledger.report.figures["certified_wh"] = certified


def check_orders(ledger: Ledger, records: list[AccountRecord], accounts: dict[Pubkey, AccountRecord | None]) -> None:
    add = ledger.add
    program = ledger.programs.trading
    assert program is not None
    open_orders, escrow = 0, 0
    for record in records:
        if record.data[:1] != bytes([OrderAccount.DISCRIMINATOR]):
            continue
        try:
            order = OrderAccount.decode(record.data)
        except FormatError as exc:
            add("escrow", f"undocumented trading account: {exc}", account=record.address)
            continue
        expected, bump = canonical([b"order", bytes(order.seller), struct.pack("<Q", order.order_id)], program)
        if record.address != expected or order.bump != bump:
            add("escrow", f"order {order.order_id} of {order.seller} is not at its canonical address {expected}",
                account=record.address)
        vault, vault_bump = canonical([b"vault", bytes(record.address)], program)
        if order.vault != vault or order.vault_bump != vault_bump:
            add("escrow", f"order {order.order_id}'s vault {order.vault} is not its canonical vault {vault}",
                account=record.address)
        replayed = ledger.orders.get(record.address)
        if replayed is None:
            add("escrow", f"order {order.order_id} of {order.seller} has no OrderCreated event",
                account=record.address)
        elif (replayed.remaining, replayed.state) != (order.remaining, order.state):
            add("escrow", f"order {order.order_id}: account says remaining {order.remaining} state {order.state}, "
                          f"its events {replayed.remaining} state {replayed.state}", account=record.address)
        held = accounts.get(order.vault)
        if order.state not in OrderAccount.OPEN:
            if held is not None and held.owner == TOKEN_PROGRAM_ID and TokenAccount.decode(held.data).amount:
                add("escrow", f"order {order.order_id} is finished (state {order.state}) but its vault still holds "
                              f"GRID", account=order.vault)
            continue
        open_orders += 1
        if held is None:
            add("escrow", f"open order {order.order_id} has no vault: {order.remaining} GRID base units unbacked",
                account=order.vault)
            continue
        try:
            vault_account = TokenAccount.decode(held.data) if held.owner == TOKEN_PROGRAM_ID else None
        except FormatError:
            vault_account = None
        if vault_account is None:
            add("escrow", f"order {order.order_id}'s vault is no SPL token account", account=order.vault)
            continue
        escrow += vault_account.amount
        if vault_account.mint != ledger.grid_mint or vault_account.owner != record.address:
            add("escrow", f"order {order.order_id}'s vault holds mint {vault_account.mint} for {vault_account.owner}"
                          f", not GRID for the order", account=order.vault)
        if vault_account.amount != order.remaining:
            add("escrow", f"order {order.order_id} of {order.seller}: vault holds {vault_account.amount} GRID base "
                          f"units, the order's remaining is {order.remaining}", account=order.vault)
    ledger.report.figures["open_orders"] = open_orders
    ledger.report.figures["escrow"] = escrow


def _mint(ledger: Ledger, accounts: dict[Pubkey, AccountRecord | None], mint: Pubkey, program: Pubkey,
          name: str) -> Mint | None:
    add = ledger.add
    record = accounts.get(mint)
    try:
        found = Mint.decode(record.data) if record is not None and record.owner == TOKEN_PROGRAM_ID else None
    except FormatError:
        found = None
    if found is None:
        add("deployment", f"the {name} mint is no SPL Token mint", account=mint)
        return None
    authority = canonical([b"authority"], program)[0]
    if found.mint_authority != authority:
        add("deployment", f"{name}'s mint authority is {found.mint_authority}, not the program's PDA {authority}: "
                          f"{name} could be minted outside the program", account=mint)
    return found


def check_supplies(ledger: Ledger, accounts: dict[Pubkey, AccountRecord | None]) -> None:
    add, f = ledger.add, ledger.report.figures
    minted, recomputed, consumed = ledger.grid_events_total, ledger.grid_recomputed, ledger.grid_consumed
    f.update(grid_minted=minted, grid_recomputed=recomputed, grid_consumed=consumed, settlements=len(ledger.settled),
             meters=len(ledger.meters), baselines=ledger.baselines)
    assert ledger.grid_mint is not None
    grid = _mint(ledger, accounts, ledger.grid_mint, ledger.programs.energy_token, "GRID")
    if minted != recomputed:
        add("grid-supply", f"the programs' events minted {minted} GRID base units, the settled readings account "
                           f"for {recomputed}", account=ledger.grid_mint)
    if grid is not None:
        f["grid_supply"] = grid.supply
        if grid.freeze_authority is not None:
            add("deployment", f"GRID has a freeze authority {grid.freeze_authority}", account=ledger.grid_mint)
        if grid.supply + consumed != recomputed:
            add("grid-supply", f"GRID supply {grid.supply} + consumed {consumed} = {grid.supply + consumed} base "
                               f"units, but the settled readings account for {recomputed}", account=ledger.grid_mint)
    if ledger.programs.payments is None or ledger.thbc_mint is None:
        ledger.report.skipped.append("THBC supply (no payments program id in the deployment)")
        return
    issued, redeemed = ledger.thbc_issued, ledger.thbc_redeemed
    f.update(thbc_issued=issued, thbc_redeemed=redeemed)
    thbc = _mint(ledger, accounts, ledger.thbc_mint, ledger.programs.payments, "THBC")
    if thbc is not None:
        f["thbc_supply"] = thbc.supply
        if thbc.supply != issued - redeemed:
            add("thbc-supply", f"THBC supply {thbc.supply} base units, but PaymentIssued {issued} - Redeemed "
                               f"{redeemed} = {issued - redeemed}", account=ledger.thbc_mint)
