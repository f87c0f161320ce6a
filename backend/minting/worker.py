"""Minting worker: turn stored, verified readings into GRID on chain, once per reading, idempotently.

The next arrow after ingest (docs/minting.md). For every meter of every active gateway, the worker takes
the LATEST good reading (no METER_ERROR flag) newer than the meter's last settlement and sends the
energy-token program's two-instruction settlement: the Ed25519 precompile check of the 60 signed bytes by
the meter's registered key, then SettleAndMint over the same bytes. Counters are cumulative, so the latest
reading carries everything the older ones would have; the program mints ``(export - import) - settled``
(1 Wh = 10**6 base units) and moves the meter's settled mark, so nothing can be minted twice.

A meter's first accepted reading on chain is its baseline: it mints nothing and sets the mark to its own
``export - import`` (energy counted before the meter joined is never credited). So for a meter the chain
has never settled (``settlement_count == 0``), the worker first settles the EARLIEST good reading it holds
as the baseline, then the latest: what the meter generated between the two is minted in the same pass.

The worker keeps its own ``settlements`` table (created here, same SQL on PostgreSQL and SQLite):

- ``minted``: the chain accepted the reading; the transaction signature and minted base units are kept;
- ``already_settled``: the chain refused it as not newer than what it holds (``ReplayedReading``,
  ``StaleTimestamp``): someone settled it (or a newer one) already, or a retried send had landed.
  Recording it is what stops the worker retrying the same bytes forever.

Any other refusal (``CounterRollback``, ``MeterNotActive``, ...) is logged once by the program's error
name, counted, and tried again with the next newer reading. A chain outage (``ChainError`` from the
transport) is retried with exponential backoff (tenacity); if the chain stays away, :meth:`run_once`
raises :class:`ChainUnavailable` and :meth:`run` tries again at the next interval.

The worker's key (``relayer``) only pays fees: it signs nothing the programs trust. GRID can be minted only
for bytes the meter's registered key signed, to the meter owner's account, and only above the mark.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TypeVar

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from backend.storage import Storage, StorageError
from gridtokenx.reading import Flags, ReadingFormatError, SignatureError, SignedReading, verify
from programs.client.chain import Chain, ChainError, TxResult
from programs.client.errors import TransactionFailure
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import GridDeployment
from programs.registry import client as registry

__all__ = [
    "SETTLEMENTS_SCHEMA",
    "ChainRetry",
    "ChainUnavailable",
    "MeterSettlement",
    "MintingError",
    "MintingStats",
    "MintingSummary",
    "MintingWorker",
    "Outcome",
]

log = logging.getLogger(__name__)

SETTLEMENTS_SCHEMA = """CREATE TABLE IF NOT EXISTS settlements (
    gateway_id TEXT NOT NULL,
    meter_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('minted', 'already_settled')),
    refusal TEXT,
    tx_signature TEXT,
    minted_base_units BIGINT NOT NULL,
    settled_ms BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, meter_id, seq)
)"""

# Refusals that mean "the chain already holds this reading or a newer one": final, never retried.
_ALREADY_SETTLED = frozenset({"ReplayedReading", "StaleTimestamp"})
_T = TypeVar("_T")


class MintingError(Exception):
    """The minting worker could not do its job; the message names the gateway and meter."""


class ChainUnavailable(MintingError):
    """The chain stayed unreachable through every retry."""


class Outcome(enum.StrEnum):
    MINTED = "minted"
    ALREADY_SETTLED = "already_settled"


@dataclass(frozen=True)
class ChainRetry:
    """Backoff for chain calls that fail in transport: ``attempts`` tries, waits doubling from
    ``first_wait`` up to ``max_wait`` seconds."""

    attempts: int = 6
    first_wait: float = 0.5
    max_wait: float = 15.0


@dataclass(frozen=True)
class MeterSettlement:
    gateway_id: str
    meter_id: str
    seq: int
    outcome: Outcome
    minted: int  # GRID base units (10**9 per kWh); 0 for already_settled
    signature: str | None  # the transaction, when this worker's one landed
    refusal: str | None = None  # the program's error name, for already_settled
    net_wh: int = 0  # the reading's lifetime net generation, export - import (GRID is minted above the mark)
    passed_over: int = 0  # newer readings flagged METER_ERROR that were not sent
    baseline: bool = False  # the meter's first reading on chain: it set the mark, minted nothing

    @property
    def minted_wh(self) -> int:
        return self.minted // energy.BASE_UNITS_PER_WH


@dataclass
class MintingSummary:
    """What one :meth:`MintingWorker.run_once` did, by meter id."""

    # The latest reading settled per meter: minted (possibly 0: no new surplus, or it is the baseline).
    settled: dict[str, MeterSettlement] = field(default_factory=dict)
    # Baselines settled in this pass: the meter's first reading on chain (possibly the same as settled's).
    baselines: dict[str, MeterSettlement] = field(default_factory=dict)
    already_settled: dict[str, MeterSettlement] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # meter → program error name
    skipped: dict[str, str] = field(default_factory=dict)  # meter → why (not registered, not active, ...)

    @property
    def minted(self) -> dict[str, int]:
        return {meter: s.minted for meter, s in self.settled.items()}

    @property
    def minted_total(self) -> int:
        return sum(s.minted for s in self.settled.values())


@dataclass
class MintingStats:
    """Counters since the worker started (they start at zero)."""

    runs: int = 0
    settled: int = 0  # readings the chain accepted, baselines included
    baselines: int = 0
    minted_base_units: int = 0
    already_settled: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    chain_retries: int = 0
    chain_outages: int = 0


@dataclass(frozen=True)
class _Candidate:
    gateway_id: str
    meter_id: str
    seq: int
    signed: SignedReading
    passed_over: int  # newer readings carrying METER_ERROR
    # The earliest good reading above the last settlement, when older than ``signed``: the baseline to
    # settle first if the chain has never settled this meter.
    earliest: _Candidate | None = None

    @property
    def net_wh(self) -> int:
        reading = self.signed.reading
        return reading.export_wh - reading.import_wh


class MintingWorker:
    """Settle the latest good reading of each meter through ``chain``.

    ``deployment``: the registry / energy-token pair and the GRID mint. ``relayer``: the backend's key,
    which pays the fees. ``gateways``: only these gateway ids (default: every active gateway).
    """

    def __init__(
        self,
        storage: Storage,
        chain: Chain,
        deployment: GridDeployment,
        *,
        relayer: Keypair,
        gateways: Collection[str] | None = None,
        retry: ChainRetry = ChainRetry(),
    ) -> None:
        self.storage = storage
        self.chain = chain
        self.deployment = deployment
        self.relayer = relayer
        self.gateways = None if gateways is None else frozenset(gateways)
        self.retry = retry
        self.stats = MintingStats()
        self._schema_ready = False
        self._noted: set[tuple[str, str, str]] = set()  # (gateway, meter, problem) logged at WARNING once

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, interval: float) -> None:
        """``run_once`` every ``interval`` seconds until cancelled; outages and transient database
        errors are logged and tried again at the next interval."""
        while True:
            try:
                await self.run_once()
            except MintingError as exc:  # the chain stayed away, or answered something unexpected
                log.warning("minting: %s; trying again in %.0f s", exc, interval)
            except StorageError as exc:
                if not exc.transient:
                    raise
                log.warning("minting: %s; trying again in %.0f s", exc, interval)
            await asyncio.sleep(interval)

    async def run_once(self) -> MintingSummary:
        await self._ensure_schema()
        summary = MintingSummary()
        self.stats.runs += 1
        for gateway_id in await self._gateway_ids():
            for candidate in await self._candidates(gateway_id):
                await self._settle(candidate, summary)
        return summary

    # -- database ------------------------------------------------------------------------------

    async def _ensure_schema(self) -> None:
        if not self._schema_ready:
            await self.storage.execute(SETTLEMENTS_SCHEMA)
            self._schema_ready = True

    async def _gateway_ids(self) -> list[str]:
        return [
            g.gateway_id
            for g in await self.storage.gateways()
            if g.status == "active" and (self.gateways is None or g.gateway_id in self.gateways)
        ]

    async def _candidates(self, gateway_id: str) -> list[_Candidate]:
        """Per meter: its latest good reading newer than its last settlement (if any), with the earliest
        such reading when there are several (the baseline, should the chain hold none yet)."""
        meters = await self.storage.fetch(
            "SELECT m.meter_id, (SELECT max(s.seq) FROM settlements s "
            "WHERE s.gateway_id = m.gateway_id AND s.meter_id = m.meter_id) "
            "FROM (SELECT DISTINCT gateway_id, meter_id FROM readings WHERE gateway_id = $1) m ORDER BY m.meter_id",
            gateway_id,
        )
        out = []
        for meter_id, last in meters:
            # The primary key (gateway_id, meter_id, seq) serves this backwards range scan.
            rows = await self.storage.fetch(
                "SELECT seq, data, signature FROM readings WHERE gateway_id = $1 AND meter_id = $2 AND seq > $3 "
                f"AND (flags & {int(Flags.METER_ERROR)}) = 0 ORDER BY seq DESC LIMIT 1",
                gateway_id,
                meter_id,
                -1 if last is None else int(last),
            )
            if rows:
                seq, data, signature = rows[0]
                flagged = await self.storage.fetch(
                    "SELECT count(*) FROM readings WHERE gateway_id = $1 AND meter_id = $2 AND seq > $3 "
                    f"AND (flags & {int(Flags.METER_ERROR)}) <> 0",
                    gateway_id,
                    meter_id,
                    int(seq),
                )
                first = await self.storage.fetch(
                    "SELECT seq, data, signature FROM readings WHERE gateway_id = $1 AND meter_id = $2 AND seq > $3 "
                    f"AND (flags & {int(Flags.METER_ERROR)}) = 0 ORDER BY seq LIMIT 1",
                    gateway_id,
                    meter_id,
                    -1 if last is None else int(last),
                )
                first_seq, first_data, first_signature = first[0]
                earliest = None
                if int(first_seq) < int(seq):
                    earliest = _Candidate(gateway_id, meter_id, int(first_seq),
                                          SignedReading(bytes(first_data), bytes(first_signature)), 0)
                out.append(_Candidate(gateway_id, meter_id, int(seq), SignedReading(bytes(data), bytes(signature)),
                                      int(flagged[0][0]), earliest))
        return out

    async def _record(self, s: MeterSettlement) -> None:
        await self.storage.execute(
            "INSERT INTO settlements (gateway_id, meter_id, seq, outcome, refusal, tx_signature, minted_base_units, "
            "settled_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            s.gateway_id,
            s.meter_id,
            s.seq,
            s.outcome.value,
            s.refusal,
            s.signature,
            s.minted,
            int(time.time() * 1000),
        )

    # -- chain ---------------------------------------------------------------------------------

    async def _chain_call(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        def note_retry(state: RetryCallState) -> None:
            self.stats.chain_retries += 1
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning("minting: chain unreachable (%s): %s; retrying in %.2f s", what, exc, wait)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential(multiplier=self.retry.first_wait, min=self.retry.first_wait,
                                  max=self.retry.max_wait),
            retry=retry_if_exception_type(ChainError),
            before_sleep=note_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except ChainError as exc:
            self.stats.chain_outages += 1
            raise ChainUnavailable(f"chain unreachable after {self.retry.attempts} tries ({what}): {exc}") from exc
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def _settle(self, c: _Candidate, summary: MintingSummary) -> None:
        where = f"gateway {c.gateway_id} meter {c.meter_id} seq {c.seq}"
        program = self.deployment.registry_program
        try:
            meter = await self._chain_call(f"{where}: meter account",
                                           lambda: registry.fetch_meter(self.chain, program, c.meter_id))
        except ValueError as exc:  # an account at the meter's address that is not a registry meter
            self._skip(c, summary, "foreign_account", f"{where}: {exc}")
            return
        if meter is None:
            self._skip(c, summary, "not_registered", f"{where}: meter is not registered on chain "
                       f"(registry {program}); its readings wait until it is")
            return
        if meter.status != registry.MeterStatus.ACTIVE:
            self._skip(c, summary, "not_active", f"{where}: meter is {meter.status.name} on chain, not ACTIVE")
            return
        try:
            # The program checks this too; checking first costs nothing and names the problem.
            for reading in (c.signed, *((c.earliest.signed,) if c.earliest is not None else ())):
                verify(reading.data, reading.signature, meter.meter_key)
        except (SignatureError, ReadingFormatError) as exc:
            self._skip(c, summary, "key_mismatch", f"{where}: the reading does not verify with the meter's "
                       f"registered key {meter.meter_key.hex()[:16]}…: {exc}")
            return

        if meter.settlement_count == 0 and c.earliest is not None:
            # The chain's first reading of this meter is its baseline and mints nothing: make it the
            # earliest one held, so the generation between it and the latest is credited now.
            if not await self._send(c.earliest, meter, summary, baseline=True, latest=False):
                return
        await self._send(c, meter, summary, baseline=meter.settlement_count == 0 and c.earliest is None, latest=True)

    async def _send(self, c: _Candidate, meter: registry.Meter, summary: MintingSummary, *, baseline: bool,
                    latest: bool) -> bool:
        """One [Ed25519 check, SettleAndMint] transaction; the outcome recorded and counted. True if the
        chain now holds this reading (accepted now or already). ``latest``: the meter's reading of this
        pass (False for a baseline settled before it)."""
        where = f"gateway {c.gateway_id} meter {c.meter_id} seq {c.seq}"
        d = self.deployment
        ixs = energy.settle_transaction(d.energy_program, d.registry_program, d.mint, meter.owner, c.signed,
                                        meter.meter_key)
        result = await self._chain_call(f"{where}: settle",
                                        lambda: self.chain.send_transaction(ixs, [self.relayer]))
        if result.failure is None:
            settled = MeterSettlement(c.gateway_id, c.meter_id, c.seq, Outcome.MINTED,
                                      _minted(result, d.energy_program, where),
                                      str(result.signature), None, c.net_wh, c.passed_over, baseline)
            await self._record(settled)
            if baseline:
                summary.baselines[c.meter_id] = settled
            if latest:
                summary.settled[c.meter_id] = settled
            self.stats.settled += 1
            self.stats.baselines += baseline
            self.stats.minted_base_units += settled.minted
            self._recovered(c)
            if baseline:
                log.info("minting: %s settled as the meter's baseline: export - import %+d Wh, nothing minted "
                         "(tx %s)", where, c.net_wh, settled.signature)
            else:
                log.info("minting: %s settled: %d Wh minted (tx %s)", where, settled.minted_wh, settled.signature)
            return True
        name = _failure_name(result.failure)
        if name in _ALREADY_SETTLED:
            done = MeterSettlement(c.gateway_id, c.meter_id, c.seq, Outcome.ALREADY_SETTLED, 0, None, name, c.net_wh,
                                   c.passed_over, baseline)
            await self._record(done)
            summary.already_settled[c.meter_id] = done
            self.stats.already_settled += 1
            log.info("minting: %s already settled on chain (%s); recorded, not retried", where, name)
            return True
        summary.refused[c.meter_id] = name
        self.stats.refused[name] += 1
        self._note(c, f"refused:{name}", f"minting: {where} refused by the chain: {name} "
                   f"({' | '.join(result.logs[-3:])})")
        return False

    # -- failing quietly, visibly ----------------------------------------------------------------

    def _skip(self, c: _Candidate, summary: MintingSummary, reason: str, message: str) -> None:
        summary.skipped[c.meter_id] = reason
        self.stats.skipped[reason] += 1
        self._note(c, reason, f"minting: skipped {message}")

    def _note(self, c: _Candidate, problem: str, message: str) -> None:
        """WARNING the first time a meter has this problem, DEBUG until it settles again."""
        key = (c.gateway_id, c.meter_id, problem)
        log.log(logging.DEBUG if key in self._noted else logging.WARNING, "%s", message)
        self._noted.add(key)

    def _recovered(self, c: _Candidate) -> None:
        self._noted = {k for k in self._noted if k[:2] != (c.gateway_id, c.meter_id)}


def _failure_name(failure: TransactionFailure) -> str:
    if failure.instruction_index == 0:  # the Ed25519 precompile, not the energy-token program
        return f"Ed25519:{failure.error or failure.kind}"
    return energy.ENERGY_TOKEN_ERRORS.name(failure)


def _minted(result: TxResult, energy_program: Pubkey, where: str) -> int:
    """Minted base units from the program's event: GridMinted's amount, 0 for a BaselineRecorded."""
    for event in energy.decode_events(result, energy_program):
        if isinstance(event, energy.GridMinted):
            return event.amount
        if isinstance(event, energy.BaselineRecorded):
            return 0
    raise MintingError(f"{where}: settlement {result.signature} succeeded without its GridMinted / "
                       f"BaselineRecorded event")
