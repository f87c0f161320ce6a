"""Minting worker: turn stored, verified readings into GRID on chain, once per reading, idempotently.

The next arrow after ingest (docs/minting.md). For every meter of every active gateway with readings above
its last settlement, the worker takes the LATEST good reading (no METER_ERROR flag) and sends the
energy-token program's settlement: the Ed25519 precompile check of the 60 signed bytes by the meter's
registered key, then SettleAndMint over the same bytes. Counters are cumulative, so the latest reading
carries everything the older ones would have; the program mints ``(export - import) - settled mark``
(1 Wh = 10**6 base units) and moves the mark, so nothing can be minted twice.

A meter's first accepted reading on chain is its baseline: it mints nothing and sets the mark to its own
``export - import``. So for a meter the chain has never settled (``settlement_count == 0``), the worker
settles the EARLIEST good reading it holds as the baseline, then the latest, in the same transaction.

Several meters go into one transaction while it fits (1,232 bytes), and ``concurrency`` transactions are in
flight at once. If one meter's instructions fail, the transaction's failing instruction names the meter;
the others are sent again without it.

Each reading's state is kept in ``reading_states`` (backend/storage/reading_states.py): PROCESSING while
its settlement is in flight; MINTED with the transaction (readings the settlement covered too); FAILED with
the program's error name and a retry time (exponential backoff, ``max_attempts``), or ``chain_unavailable``
/ ``not_registered`` / ``not_active`` / ``key_mismatch`` (waits that do not use up attempts). The chain
refusing a reading as not newer than what it holds (``ReplayedReading``, ``StaleTimestamp``) means someone
settled it already: it is MINTED (without a signature until the indexer sees the settle event), never
retried. A worker holds a lease on each meter it works on (``mint_progress``), so two workers never send
the same meter at once and a reading's outcome is recorded once.

The worker's key (``relayer``) only pays fees: it signs nothing the programs trust. GRID can be minted only
for bytes the meter's registered key signed, to the meter owner's account, and only above the mark.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from backend.storage import Storage, StorageError
from backend.storage import reading_states as states
from gridtokenx.reading import ReadingFormatError, SignatureError, SignedReading, verify
from programs.client.chain import Chain, ChainError, RpcChain, TxResult
from programs.client.errors import TransactionFailure
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import GridDeployment
from programs.registry import client as registry

__all__ = [
    "ChainRetry",
    "ChainUnavailable",
    "MeterSettlement",
    "MintPolicy",
    "MintingError",
    "MintingStats",
    "MintingSummary",
    "MintingWorker",
    "Outcome",
]

log = logging.getLogger(__name__)

# Refusals that mean "the chain already holds this reading or a newer one": final, never retried.
_ALREADY_SETTLED = frozenset({"ReplayedReading", "StaleTimestamp"})
PACKET_DATA_SIZE = 1232  # the largest serialized transaction
_T = TypeVar("_T")
_UNFETCHED = object()


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
class MintPolicy:
    """Retry queue, leases and batching (``[minter]`` in the backend configuration)."""

    max_attempts: int = 8
    retry_first_s: float = 5.0
    retry_max_s: float = 600.0
    lease_s: float = 300.0
    concurrency: int = 4
    meters_per_transaction: int = 0  # 0: as many as fit
    # Readings delivered out of order (below a settlement made meanwhile) are looked for this often, among
    # the ``late_window`` sequence numbers below each meter's settlement.
    sweep_interval_s: float = 30.0
    late_window: int = 5_000

    def retry_at_ms(self, attempts: int, now_ms: int) -> int | None:
        """When a reading that has failed ``attempts`` times is tried again; None: given up."""
        if attempts >= self.max_attempts:
            return None
        return now_ms + int(1000 * min(self.retry_first_s * 2 ** max(attempts - 1, 0), self.retry_max_s))


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
    transactions: int = 0  # settlement transactions that landed

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
    meters_settled: int = 0  # meters brought up to date (one per meter per pass)
    transactions: int = 0
    minted_base_units: int = 0
    already_settled: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    chain_retries: int = 0
    chain_outages: int = 0
    lease_lost: int = 0
    late_covered: int = 0  # readings delivered after a newer one was settled, MINTED by that settlement


@dataclass
class _Unit:
    """One meter's settlement: its readings (a baseline first when the chain has none), their instructions."""

    gateway_id: str
    meter_id: str
    meter: registry.Meter
    readings: list[states.StoredReading]
    baseline_seq: int | None
    passed_over: int
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"gateway {self.gateway_id} meter {self.meter_id}"

    def build(self, d: GridDeployment) -> None:
        self.instructions = []
        for r in self.readings:
            self.instructions += energy.settle_transaction(
                d.energy_program, d.registry_program, d.mint, self.meter.owner,
                SignedReading(r.data, r.signature), self.meter.meter_key)

    def reading_at(self, instruction: int) -> states.StoredReading:
        """The reading whose [Ed25519, SettleAndMint] pair holds this instruction (index within the unit)."""
        return self.readings[min(instruction // 2, len(self.readings) - 1)]


def _net_wh(r: states.StoredReading) -> int:
    (imp, exp) = struct.unpack_from("<QQ", r.data, 40)
    return int(exp) - int(imp)


class MintingWorker:
    """Settle the latest good reading of each meter through ``chain``.

    ``deployment``: the registry / energy-token pair and the GRID mint. ``relayer``: the backend's key,
    which pays the fees. ``gateways``: only these gateway ids (default: every active gateway).
    ``instance``: this worker's name in meter leases (unique per process).
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
        policy: MintPolicy = MintPolicy(),
        instance: str = "minter",
    ) -> None:
        self.storage = storage
        self.chain = chain
        self.deployment = deployment
        self.relayer = relayer
        self.gateways = None if gateways is None else frozenset(gateways)
        self.retry = retry
        self.policy = policy
        self.instance = instance
        self.stats = MintingStats()
        self._noted: set[tuple[str, str, str]] = set()  # (gateway, meter, problem) logged at WARNING once
        self._swept = 0.0  # monotonic time of the last sweep for late readings
        self._meter_cache: dict[str, Any] = {}  # meter accounts fetched together for this pass

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
        summary = MintingSummary()
        self.stats.runs += 1
        units: list[_Unit] = []
        try:
            gate = asyncio.Semaphore(self.policy.concurrency)

            async def prepare(work: states.MeterWork) -> None:
                async with gate:  # meters are looked up on chain concurrently
                    unit = await self._prepare(work, summary)
                if unit is not None:
                    units.append(unit)

            for gateway_id in await self._gateway_ids():
                works = await states.meters_with_new_readings(self.storage, gateway_id)
                self._meter_cache = await self._fetch_meters([w.meter_id for w in works])
                results = await asyncio.gather(*(prepare(w) for w in works), return_exceptions=True)
                failures = [r for r in results if isinstance(r, BaseException)]
                if failures:
                    if any(isinstance(f, ChainUnavailable) for f in failures):
                        for unit in units:  # prepared before the chain went away: they wait for the next pass
                            await states.record_failed(self.storage, unit.gateway_id, unit.meter_id,
                                                       [r.seq for r in unit.readings], "chain_unavailable",
                                                       retry_at_ms=_now_ms(), count_attempt=False)
                    raise next((f for f in failures if isinstance(f, ChainUnavailable)), failures[0])
            await self._send_all(units, summary)
            if time.monotonic() - self._swept >= self.policy.sweep_interval_s:
                await self.sweep_late_readings()
        finally:
            for unit in units:  # a meter still held (an error above) is released for the next pass
                await states.release_meter(self.storage, unit.gateway_id, unit.meter_id, self.instance)
        return summary

    async def _fetch_meters(self, meter_ids: Sequence[str]) -> dict[str, Any]:
        """The registry accounts of these meters (None: not registered; an exception: not a registry
        meter), over JSON-RPC in getMultipleAccounts calls of 100 instead of one request per meter. Tried
        once: if the node cannot answer it, each meter is looked up on its own (with the retries)."""
        if not meter_ids or not isinstance(self.chain, RpcChain):
            return {}
        rpc = self.chain
        program = self.deployment.registry_program
        out: dict[str, Any] = {}
        for start in range(0, len(meter_ids), 100):
            chunk = list(meter_ids[start: start + 100])
            addresses = [registry.meter_address(program, m)[0] for m in chunk]

            try:
                resp = await rpc._call("getMultipleAccounts", rpc.client.get_multiple_accounts(addresses))
            except ChainError as exc:
                log.debug("minting: getMultipleAccounts failed (%s); looking meters up one by one", exc)
                return out
            for meter_id, account in zip(chunk, resp.value, strict=True):
                if account is None:
                    out[meter_id] = None
                elif account.owner != program:
                    out[meter_id] = ValueError(f"meter account of {meter_id!r} is owned by {account.owner}, "
                                               "not the registry")
                else:
                    try:
                        out[meter_id] = registry.Meter.decode(bytes(account.data))
                    except ValueError as exc:
                        out[meter_id] = exc
        return out

    async def sweep_late_readings(self) -> int:
        """Cover readings that reached the database after a newer reading of their meter was settled."""
        self._swept = time.monotonic()
        covered = 0
        for gateway_id, meter_id, settled_seq in await states.settled_meters(self.storage):
            covered += await states.cover_late_readings(self.storage, gateway_id, meter_id, settled_seq,
                                                        self.policy.late_window)
        if covered:
            self.stats.late_covered += covered
            log.info("minting: %d readings delivered after a newer one was settled: MINTED by that settlement",
                     covered)
        return covered

    async def _gateway_ids(self) -> list[str]:
        return [
            g.gateway_id
            for g in await self.storage.gateways()
            if g.status == "active" and (self.gateways is None or g.gateway_id in self.gateways)
        ]

    # -- choosing what to send ------------------------------------------------------------------

    async def _prepare(self, work: states.MeterWork, summary: MintingSummary) -> _Unit | None:
        gw, meter_id = work.gateway_id, work.meter_id
        pair = await states.candidate_readings(self.storage, gw, meter_id, work.settled_seq)
        if pair is None:  # only readings flagged METER_ERROR above the last settlement
            await states.mark_meter_errors(self.storage, gw, meter_id,
                                           -1 if work.settled_seq is None else work.settled_seq)
            return None
        earliest, latest = pair
        now = _now_ms()
        if latest.state is states.ReadingState.FAILED and (latest.next_attempt_ms is None
                                                            or latest.next_attempt_ms > now):
            return None  # waiting in the retry queue, or given up until a newer reading arrives
        if not await states.claim_meter(self.storage, gw, meter_id, self.instance,
                                        lease_ms=int(self.policy.lease_s * 1000)):
            return None  # another worker is settling this meter
        try:
            unit = await self._unit(work, earliest, latest, summary)
        except BaseException:
            await states.release_meter(self.storage, gw, meter_id, self.instance)
            raise
        if unit is None:
            await states.release_meter(self.storage, gw, meter_id, self.instance)
        return unit

    async def _unit(self, work: states.MeterWork, earliest: states.StoredReading, latest: states.StoredReading,
                    summary: MintingSummary) -> _Unit | None:
        gw, meter_id = work.gateway_id, work.meter_id
        where = f"gateway {gw} meter {meter_id} seq {latest.seq}"
        program = self.deployment.registry_program
        try:
            cached = self._meter_cache.pop(meter_id, _UNFETCHED)
            if isinstance(cached, Exception):
                raise cached
            meter = cached if cached is not _UNFETCHED else await self._chain_call(
                f"{where}: meter account", lambda: registry.fetch_meter(self.chain, program, meter_id))
        except ChainUnavailable:
            await states.record_failed(self.storage, gw, meter_id, [latest.seq], "chain_unavailable",
                                       retry_at_ms=_now_ms(), count_attempt=False)
            raise
        except ValueError as exc:  # an account at the meter's address that is not a registry meter
            await self._skip(gw, meter_id, latest, summary, "foreign_account", f"{where}: {exc}")
            return None
        if meter is None:
            await self._skip(gw, meter_id, latest, summary, "not_registered",
                             f"{where}: meter is not registered on chain (registry {program}); its readings "
                             "wait until it is")
            return None
        if meter.status != registry.MeterStatus.ACTIVE:
            await self._skip(gw, meter_id, latest, summary, "not_active",
                             f"{where}: meter is {meter.status.name} on chain, not ACTIVE")
            return None
        readings = [latest]
        baseline_seq = None
        if meter.settlement_count == 0:
            # The chain's first reading of this meter is its baseline and mints nothing: make it the
            # earliest one held, so the generation between it and the latest is credited now.
            baseline_seq = earliest.seq
            if earliest.seq != latest.seq:
                readings = [earliest, latest]
        try:
            # The program checks this too; checking first costs nothing and names the problem.
            for r in readings:
                verify(r.data, r.signature, meter.meter_key)
        except (SignatureError, ReadingFormatError) as exc:
            await self._skip(gw, meter_id, latest, summary, "key_mismatch",
                             f"{where}: the reading does not verify with the meter's registered key "
                             f"{meter.meter_key.hex()[:16]}…: {exc}")
            return None
        passed_over = await states.mark_meter_errors(self.storage, gw, meter_id, latest.seq)
        await states.mark_processing(self.storage, gw, meter_id, [r.seq for r in readings], self.instance)
        unit = _Unit(gw, meter_id, meter, readings, baseline_seq, passed_over)
        unit.build(self.deployment)
        return unit

    # -- sending ----------------------------------------------------------------------------------

    def _fits(self, units: Sequence[_Unit]) -> bool:
        if self.policy.meters_per_transaction and len(units) > self.policy.meters_per_transaction:
            return False
        ixs = [ix for u in units for ix in u.instructions]
        tx = Transaction.new_unsigned(Message.new_with_blockhash(ixs, self.relayer.pubkey(), Hash.default()))
        return len(bytes(tx)) <= PACKET_DATA_SIZE

    def _pack(self, units: Sequence[_Unit]) -> list[list[_Unit]]:
        batches: list[list[_Unit]] = []
        for unit in units:
            if batches and self._fits([*batches[-1], unit]):
                batches[-1].append(unit)
            else:
                batches.append([unit])
        return batches

    async def _send_all(self, units: list[_Unit], summary: MintingSummary) -> None:
        if not units:
            return
        gate = asyncio.Semaphore(self.policy.concurrency)
        outage: list[ChainUnavailable] = []

        async def send(batch: list[_Unit]) -> None:
            async with gate:
                try:
                    await self._send_batch(batch, summary)
                except ChainUnavailable as exc:
                    outage.append(exc)
                    for unit in batch:
                        await states.record_failed(self.storage, unit.gateway_id, unit.meter_id,
                                                   [r.seq for r in unit.readings], "chain_unavailable",
                                                   retry_at_ms=_now_ms(), count_attempt=False)
                finally:
                    for unit in batch:
                        units.remove(unit)
                        await states.release_meter(self.storage, unit.gateway_id, unit.meter_id, self.instance)

        await asyncio.gather(*(send(batch) for batch in self._pack(list(units))))
        if outage:
            raise outage[0]

    async def _send_batch(self, batch: list[_Unit], summary: MintingSummary) -> None:
        """Send one transaction; on a refusal, settle what can be settled without the refused meter."""
        while batch:
            where = ", ".join(u.where for u in batch)
            result = await self._chain_call(f"{where}: settle", functools.partial(
                self.chain.send_transaction, [ix for u in batch for ix in u.instructions], [self.relayer]))
            if result.failure is None:
                await self._landed(batch, result, summary)
                return
            unit, index = self._culprit(batch, result.failure)
            if unit is None:  # not attributable to one meter (fees, blockhash …): all wait for the next pass
                for u in batch:
                    await self._failed(u, f"transaction:{result.failure.kind}", result, summary, count=False)
                return
            batch = [u for u in batch if u is not unit]
            retry_unit = await self._refused(unit, index, result, summary)
            if retry_unit:
                unit.build(self.deployment)
                batch.append(unit)

    def _culprit(self, batch: Sequence[_Unit], failure: TransactionFailure) -> tuple[_Unit | None, int]:
        if failure.instruction_index is None:
            return None, 0
        offset = 0
        for unit in batch:
            if offset <= failure.instruction_index < offset + len(unit.instructions):
                return unit, failure.instruction_index - offset
            offset += len(unit.instructions)
        return None, 0

    async def _refused(self, unit: _Unit, index: int, result: TxResult, summary: MintingSummary) -> bool:
        """One meter's instructions failed. True if it should be sent again (its baseline turned out to be
        settled already: the latest alone goes)."""
        failure = result.failure
        assert failure is not None
        name = _failure_name(failure, index)
        reading = unit.reading_at(index)
        if name in _ALREADY_SETTLED:
            note = f"already_settled:{name}"
            done = [states.Settled(r.seq, None, note=note) for r in unit.readings if r.seq <= reading.seq]
            await self._record(unit, done, summary, refusal=name)
            remaining = [r for r in unit.readings if r.seq > reading.seq]
            if remaining:
                unit.readings = remaining
                unit.baseline_seq = None
                await self._reclaim(unit)
                return True
            return False
        await self._failed(unit, name, result, summary, count=True)
        return False

    async def _reclaim(self, unit: _Unit) -> None:
        # _record released the meter; the latest reading still goes, under a fresh lease.
        await states.claim_meter(self.storage, unit.gateway_id, unit.meter_id, self.instance,
                                 lease_ms=int(self.policy.lease_s * 1000))

    async def _failed(self, unit: _Unit, name: str, result: TxResult, summary: MintingSummary, *, count: bool) -> None:
        latest = unit.readings[-1]
        attempts = latest.attempts + (1 if count else 0)
        retry_at = self.policy.retry_at_ms(attempts, _now_ms()) if count else _now_ms()
        await states.record_failed(self.storage, unit.gateway_id, unit.meter_id, [r.seq for r in unit.readings],
                                   name, retry_at_ms=retry_at, count_attempt=count)
        summary.refused[unit.meter_id] = name
        self.stats.refused[name] += 1
        given_up = " — given up after the last attempt" if retry_at is None else ""
        self._note(unit.gateway_id, unit.meter_id, f"refused:{name}",
                   f"minting: {unit.where} seq {latest.seq} refused by the chain: {name}{given_up} "
                   f"({' | '.join(result.logs[-3:])})")

    async def _landed(self, batch: Sequence[_Unit], result: TxResult, summary: MintingSummary) -> None:
        minted = _settle_events(result, self.deployment.energy_program)
        signature = str(result.signature)
        summary.transactions += 1
        self.stats.transactions += 1
        for unit in batch:
            settled = []
            for r in unit.readings:
                amount = minted.get((unit.meter_id, r.seq))
                if amount is None:
                    raise MintingError(f"{unit.where} seq {r.seq}: settlement {signature} succeeded without "
                                       "its settle event")
                settled.append(states.Settled(r.seq, signature, amount, baseline=r.seq == unit.baseline_seq))
            await self._record(unit, settled, summary)

    async def _record(self, unit: _Unit, settled: Sequence[states.Settled], summary: MintingSummary,
                      refusal: str | None = None) -> None:
        async with self.storage.transaction() as tx:
            held = await states.record_minted(tx, unit.gateway_id, unit.meter_id, settled, self.instance)
        if not held:
            self.stats.lease_lost += 1
            log.warning("minting: %s: another worker took the meter over while this settlement was in flight; "
                        "its outcome is theirs to record", unit.where)
            return
        by_seq = {r.seq: r for r in unit.readings}
        for s in settled:
            r = by_seq[s.seq]
            outcome = Outcome.MINTED if s.signature is not None else Outcome.ALREADY_SETTLED
            record = MeterSettlement(unit.gateway_id, unit.meter_id, s.seq, outcome, s.minted, s.signature,
                                     refusal if outcome is Outcome.ALREADY_SETTLED else None, _net_wh(r),
                                     unit.passed_over, s.baseline)
            if outcome is Outcome.ALREADY_SETTLED:
                summary.already_settled[unit.meter_id] = record
                self.stats.already_settled += 1
                log.info("minting: %s seq %d already settled on chain (%s); recorded, not retried", unit.where,
                         s.seq, refusal)
                continue
            self.stats.settled += 1
            self.stats.minted_base_units += s.minted
            if s.baseline:
                summary.baselines[unit.meter_id] = record
                self.stats.baselines += 1
                log.info("minting: %s seq %d settled as the meter's baseline: export - import %+d Wh, nothing "
                         "minted (tx %s)", unit.where, s.seq, record.net_wh, s.signature)
            if s.seq == unit.readings[-1].seq:
                summary.settled[unit.meter_id] = record
                self.stats.meters_settled += 1
                if not s.baseline:
                    log.info("minting: %s seq %d settled: %d Wh minted (tx %s)", unit.where, s.seq,
                             record.minted_wh, s.signature)
        self._recovered(unit.gateway_id, unit.meter_id)

    # -- chain calls ------------------------------------------------------------------------------

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

    # -- failing quietly, visibly ----------------------------------------------------------------

    async def _skip(self, gateway_id: str, meter_id: str, latest: states.StoredReading, summary: MintingSummary,
                    reason: str, message: str) -> None:
        """The meter cannot be settled now (not registered, not active …): its newest reading waits in the
        retry queue without using up attempts."""
        await states.record_failed(self.storage, gateway_id, meter_id, [latest.seq], reason,
                                   retry_at_ms=_now_ms() + int(1000 * self.policy.retry_first_s),
                                   count_attempt=False)
        summary.skipped[meter_id] = reason
        self.stats.skipped[reason] += 1
        self._note(gateway_id, meter_id, reason, f"minting: skipped {message}")

    def _note(self, gateway_id: str, meter_id: str, problem: str, message: str) -> None:
        """WARNING the first time a meter has this problem, DEBUG until it settles again."""
        key = (gateway_id, meter_id, problem)
        log.log(logging.DEBUG if key in self._noted else logging.WARNING, "%s", message)
        self._noted.add(key)

    def _recovered(self, gateway_id: str, meter_id: str) -> None:
        self._noted = {k for k in self._noted if k[:2] != (gateway_id, meter_id)}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _failure_name(failure: TransactionFailure, index_in_unit: int) -> str:
    if index_in_unit % 2 == 0:  # the Ed25519 precompile of a pair, not the energy-token program
        return f"Ed25519:{failure.error or failure.kind}"
    return energy.ENERGY_TOKEN_ERRORS.name(failure)


def _settle_events(result: TxResult, energy_program: Pubkey) -> dict[tuple[str, int], int]:
    """(meter id, seq) → minted base units, from the energy token's events: GridMinted's amount, 0 for a
    BaselineRecorded (a meter's first reading)."""
    out = {}
    for event in energy.decode_events(result, energy_program):
        if isinstance(event, energy.GridMinted):
            out[(event.meter_id, int(event.seq))] = int(event.amount)
        elif isinstance(event, energy.BaselineRecorded):
            out[(event.meter_id, int(event.seq))] = 0
    return out
