"""The audit: every GRID token traced to meter-signed readings, from the chain alone.

    report = audit(RpcSource(url), Programs.load(deployment_file), readings_db=None, payments_db=None)
    report.ok, report.discrepancies, report.figures

What it does (docs/audit.md says the same for a third party):

1. Snapshot the accounts: everything the registry, certificates and trading programs own, the
   configs, both mints and the escrow vaults of open orders — retaken until no transaction of ours landed
   between its reads, so that state and history describe the same moment.
2. Walk the history: every successful transaction that named one of our programs, oldest first (slot,
   then position in the block), up to the snapshot's slot. Events are read from the logs, attributed to the
   program that logged them.
3. Replay the registry (MeterRegistered, MeterStatusChanged, MeterKeyChanged, MeterReassigned) so that each
   settlement is judged against the key and status the registry held at that moment.
4. For every SettleAndMint instruction: decode the 60 signed bytes (docs/reading-format.md), find the
   Ed25519 precompile entry over exactly those bytes and check it is the meter's key of the moment and
   that the signature verifies (PyNaCl — not the precompile's word), check it is newer than the meter's
   last reading with counters not going backwards, recompute the mark and the GRID due (baseline: nothing;
   later: ``max(0, net - mark) * 10**6``), and compare with the events the transaction logged.
5. Compare totals and state: GRID supply + consumed = Σ recomputed surplus; each registry meter account
   is the canonical PDA of its id, no id twice, its marks equal the replay's; certificate ranges per meter
   disjoint and within settled generation; every open order's vault holds exactly its remaining amount;
   THBC supply = Σ PaymentIssued - Σ Redeemed (and D7 when a database is given); with a readings
   database, every settled reading is stored there byte for byte with the same signature.
"""

from __future__ import annotations

import time

from solders.pubkey import Pubkey

from audit.deployment import Programs
from audit.formats import OrderAccount, canonical, energy_config, market_mints, payments_mint
from audit.ledger import Ledger
from audit.report import AuditError, Discrepancy, Report
from audit.source import AccountRecord, ChainSource, SignatureInfo
from audit.state import check_certificates, check_meters, check_orders, check_supplies
from audit.stored import check_payments, check_readings

__all__ = ["AuditError", "Discrepancy", "Programs", "Report", "audit"]

SNAPSHOT_ATTEMPTS = 6
SNAPSHOT_PAUSE_S = 0.2


def _configs(ledger: Ledger) -> None:
    """The registry and the mints, as the programs' configs on chain name them (the deployment file only says
    where the programs are)."""
    add, programs, read = ledger.add, ledger.programs, ledger.source.accounts
    config = canonical([b"config"], programs.energy_token)[0]
    _, (found,) = read([config])
    if found is None or found.owner != programs.energy_token:
        raise AuditError(f"no energy-token config at {config}: is {programs.energy_token} the energy-token program?")
    registry, ledger.grid_mint = energy_config(found.data)
    if ledger.registry is not None and ledger.registry != registry:
        add("deployment", f"the energy token's config names registry {registry}, the deployment {ledger.registry}",
            account=config)
    ledger.registry = registry
    if programs.trading is not None:
        market = canonical([b"market"], programs.trading)[0]
        _, (found,) = read([market])
        if found is None or found.owner != programs.trading:
            add("deployment", "the trading program has no market", account=market)
        else:
            grid, ledger.thbc_mint = market_mints(found.data)
            if grid != ledger.grid_mint:
                add("deployment", f"the market trades GRID mint {grid}, the energy token mints {ledger.grid_mint}",
                    account=market)
    if programs.payments is not None:
        config = canonical([b"config"], programs.payments)[0]
        _, (found,) = read([config])
        if found is None or found.owner != programs.payments:
            add("deployment", "the payments program has no config", account=config)
        else:
            thbc = payments_mint(found.data)
            if ledger.thbc_mint is not None and thbc != ledger.thbc_mint:
                add("deployment", f"payments issues THBC mint {thbc}, the market trades {ledger.thbc_mint}",
                    account=config)
            ledger.thbc_mint = thbc


def _snapshot(ledger: Ledger) -> tuple[int, dict[str, list[AccountRecord]], dict[Pubkey, AccountRecord | None]]:
    """(slot, accounts our programs own by program, the mints and vaults): the state to compare with."""
    owned: dict[str, list[AccountRecord]] = {}
    slots: list[int] = []
    for name in ("registry", "certificates", "trading"):
        pid = ledger.registry if name == "registry" else getattr(ledger.programs, name)
        if pid is None:
            continue
        slot, records = ledger.source.program_accounts(pid)
        owned[name], slots = records, [*slots, slot]
    wanted = [m for m in (ledger.grid_mint, ledger.thbc_mint) if m is not None]
    for record in owned.get("trading", []):
        if len(record.data) == OrderAccount.LEN and record.data[0] == OrderAccount.DISCRIMINATOR:
            wanted.append(Pubkey.from_bytes(record.data[69:101]))  # the order's vault
    slot, found = ledger.source.accounts(wanted)
    slots.append(slot)
    return min(slots), owned, dict(zip(wanted, found, strict=True))


def _history(ledger: Ledger, up_to: int | None) -> tuple[list[SignatureInfo], bool]:
    """Our programs' successful transactions up to slot ``up_to``, oldest first; and whether any landed in
    or after it (the snapshot is then retaken)."""
    seen: dict[str, SignatureInfo] = {}
    for pid in ledger.programs.by_id():
        for info in ledger.source.signatures(pid):
            seen.setdefault(info.signature, info)
    if ledger.registry is not None and ledger.registry not in ledger.programs.by_id():
        for info in ledger.source.signatures(ledger.registry):
            seen.setdefault(info.signature, info)
    ordered = sorted(seen.values(), key=lambda i: (i.slot, i.index if i.index is not None else 0))
    # A transaction in the snapshot's own slot may have landed after the snapshot was read: retake it.
    later = up_to is not None and up_to >= 0 and any(i.slot >= up_to for i in ordered)
    return [i for i in ordered if not i.failed and (up_to is None or up_to < 0 or i.slot <= up_to)], later


def audit(source: ChainSource, programs: Programs, *, readings_db: str | None = None,
          payments_db: str | None = None) -> Report:
    """Run every check; the report holds the figures and each discrepancy (raises AuditError if the chain
    cannot be read as a GridTokenX deployment at all)."""
    report = Report(source.description)
    ledger = Ledger(source, programs, report)
    _configs(ledger)
    for attempt in range(SNAPSHOT_ATTEMPTS):
        if attempt:
            time.sleep(SNAPSHOT_PAUSE_S * attempt)
        slot, owned, accounts = _snapshot(ledger)
        history, moved = _history(ledger, slot)
        if not moved:
            break
    else:
        report.skipped.append(f"a consistent snapshot: transactions kept landing during {SNAPSHOT_ATTEMPTS} "
                              "attempts; state may be newer than the history walked")
    ledger.replay(history)
    meters = check_meters(ledger, owned.get("registry", []))
    if programs.certificates is not None:
        check_certificates(ledger, owned.get("certificates", []), meters)
    else:
        report.skipped.append("certificates (no certificates program id)")
    if programs.trading is not None:
        check_orders(ledger, owned.get("trading", []), accounts)
    else:
        report.skipped.append("escrow (no trading program id)")
    check_supplies(ledger, accounts)
    if payments_db is not None:
        check_payments(ledger, payments_db)
    if readings_db is not None:
        check_readings(ledger, readings_db)
    return report
