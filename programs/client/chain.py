"""One small interface to a Solana chain, with a LiteSVM and a JSON-RPC implementation.

Program clients build ``solders`` instructions and hand them to a :class:`Chain`; the same code then runs
against LiteSVM in tests and against a real cluster through JSON-RPC:

    async with LiteSVMChain() as chain:                  # or RpcChain("http://127.0.0.1:8899")
        await chain.fund(payer.pubkey(), 10**9)
        result = await chain.send_transaction([ix], [payer])
        result.raise_for_failure()

The first signer pays the fee. A failed transaction is a :class:`TxResult` with ``failure`` set (logs and
compute units included), not an exception: callers usually want to map the failure to a program error
name (programs.client.errors). ``executed`` tells a transaction that ran and failed (it is on chain and
paid its fee) from one refused before it ran (preflight, an unknown blockhash, a fee payer without SOL, a
replay: nothing happened, nothing to index). Transport problems raise :class:`ChainError`.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from solders.account import Account
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from programs.client.errors import TransactionFailure, parse_transaction_error
from programs.client.events import ProgramEvents, TransactionEvents, decode_log_events

__all__ = ["Chain", "ChainError", "LiteSVMChain", "RpcChain", "TransactionFailed", "TxResult", "litesvm_executed"]

_PROGRAM_DATA = "Program data: "


class ChainError(Exception):
    """The chain could not be reached or answered something unexpected."""


class TransactionFailed(ChainError):
    """Raised by :meth:`TxResult.raise_for_failure`; carries the result."""

    def __init__(self, result: TxResult) -> None:
        tail = "\n  ".join(result.logs[-8:])
        super().__init__(f"transaction {result.signature} failed: {result.failure}\n  {tail}")
        self.result = result


@dataclass(frozen=True)
class TxResult:
    signature: Signature
    logs: tuple[str, ...]
    compute_units: int
    failure: TransactionFailure | None
    instruction_programs: tuple[Pubkey, ...] = ()  # program id of each top-level instruction, in order
    # False: refused before it ran (nothing changed on chain, no fee); ``signature`` is still the
    # transaction's own, never a placeholder.
    executed: bool = True

    @property
    def ok(self) -> bool:
        return self.failure is None

    def raise_for_failure(self) -> TxResult:
        if self.failure is not None:
            raise TransactionFailed(self)
        return self

    def decode_events(self, programs: Mapping[Pubkey, ProgramEvents]) -> TransactionEvents:
        """Our programs' events, attributed to the program that logged them (programs.client.events)."""
        return decode_log_events(self.logs, programs, instruction_programs=self.instruction_programs or None)

    def events(self) -> list[list[bytes]]:
        """Every ``sol_log_data`` line in order, each as its list of fields, whoever logged it."""
        return [
            [base64.b64decode(field) for field in line[len(_PROGRAM_DATA):].split()]
            for line in self.logs
            if line.startswith(_PROGRAM_DATA)
        ]


@runtime_checkable
class Chain(Protocol):
    """What program clients need from a chain. Every implementation is an async context manager."""

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        """Sign with ``signers`` (the first pays the fee), send, and wait until it is confirmed."""
        ...

    async def send_signed_transaction(self, tx: Transaction) -> TxResult:
        """Send a transaction someone else signed (a user's wallet), and wait until it is confirmed.
        Its blockhash must be recent (one :meth:`latest_blockhash` handed out lately)."""
        ...

    async def get_account(self, pubkey: Pubkey) -> Account | None:
        """The account, or None if it does not exist."""
        ...

    async def fund(self, pubkey: Pubkey, lamports: int) -> None:
        """Give ``pubkey`` lamports (airdrop, or a transfer from the chain's funder)."""
        ...

    async def latest_blockhash(self) -> Hash: ...

    async def minimum_balance(self, data_len: int) -> int:
        """Lamports for an account of ``data_len`` bytes to be rent-exempt."""
        ...

    async def wait_for_next_slot(self) -> None:
        """Return once a new slot has started (a program deployed in slot n runs from slot n + 1)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def _sign(instructions: Sequence[Instruction], signers: Sequence[Keypair], blockhash: Hash) -> Transaction:
    if not signers:
        raise ValueError("a transaction needs at least one signer (the first pays the fee)")
    message = Message(list(instructions), signers[0].pubkey())
    return Transaction(list(signers), message, blockhash)


RECENT_BLOCKHASHES = 150  # a cluster accepts a blockhash for about 150 slots


class LiteSVMChain:
    """The chain in-process, for tests and the demo. Pass a configured ``LiteSVM`` or get the default."""

    def __init__(self, svm: LiteSVM | None = None) -> None:
        self.svm = svm if svm is not None else LiteSVM()
        # LiteSVM accepts only its latest blockhash, and every send here moves it on; a transaction that
        # a wallet signs takes seconds, during which other transactions go through. So, as a cluster
        # does, accept any of the last RECENT_BLOCKHASHES handed out (replays stay refused by LiteSVM's
        # signature history: AlreadyProcessed).
        self._recent: deque[Hash] = deque(maxlen=RECENT_BLOCKHASHES)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def add_program(self, program_id: Pubkey, so: bytes) -> None:
        """Load a program directly (LiteSVM only; a cluster deploys with programs.client.deploy)."""
        self.svm.add_program(program_id, so)

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        tx = _sign(instructions, signers, self.svm.latest_blockhash())
        outcome = self.svm.send_transaction(tx)
        # A new blockhash per transaction, as on a cluster, so that sending the same instructions twice
        # is two transactions rather than AlreadyProcessed.
        self.svm.expire_blockhash()
        return _litesvm_result(tx, outcome, tuple(ix.program_id for ix in instructions))

    async def send_signed_transaction(self, tx: Transaction) -> TxResult:
        blockhash = tx.message.recent_blockhash
        if blockhash != self.svm.latest_blockhash() and blockhash not in self._recent:
            return TxResult(tx.signatures[0], (), 0, TransactionFailure("BlockhashNotFound"),
                            _instruction_programs(tx), executed=False)
        self.svm.with_blockhash_check(False)
        try:
            outcome = self.svm.send_transaction(tx)
        finally:
            self.svm.with_blockhash_check(True)
        self._remember(self.svm.latest_blockhash())
        self.svm.expire_blockhash()
        return _litesvm_result(tx, outcome, _instruction_programs(tx))

    def _remember(self, blockhash: Hash) -> None:
        if not self._recent or self._recent[-1] != blockhash:
            self._recent.append(blockhash)

    async def get_account(self, pubkey: Pubkey) -> Account | None:
        account = self.svm.get_account(pubkey)
        # LiteSVM reports a never-funded address as an empty system account; a cluster returns nothing.
        if account is None or (account.lamports == 0 and not account.data and not account.executable):
            return None
        return account

    async def fund(self, pubkey: Pubkey, lamports: int) -> None:
        outcome = self.svm.airdrop(pubkey, lamports)
        # An airdrop is a transaction too: without a new blockhash a second identical one (same key, same
        # amount) would be AlreadyProcessed.
        self.svm.expire_blockhash()
        if isinstance(outcome, FailedTransactionMetadata):
            raise ChainError(f"airdrop of {lamports} lamports to {pubkey} failed: {outcome.err()}")

    async def latest_blockhash(self) -> Hash:
        blockhash = self.svm.latest_blockhash()
        self._remember(blockhash)
        return blockhash

    async def minimum_balance(self, data_len: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(data_len)

    async def wait_for_next_slot(self) -> None:
        self.svm.warp_to_slot(self.svm.get_clock().slot + 1)


def litesvm_executed(tx: Transaction | VersionedTransaction, outcome: Any) -> bool:
    """Whether LiteSVM ran ``tx`` (and so recorded it: state, fee, signature history). A transaction
    refused before it ran — fee payer without SOL, unknown blockhash, a message that does not sanitize, a
    bad signature, a replay (AlreadyProcessed) — comes back with default metadata, whose signature is the
    all-zero placeholder rather than the transaction's own."""
    if not isinstance(outcome, FailedTransactionMetadata):
        return True
    own = tx.signatures[0] if tx.signatures else Signature.default()
    return own != Signature.default() and outcome.meta().signature() == own


def _litesvm_result(tx: Transaction | VersionedTransaction, outcome: Any,
                    instruction_programs: tuple[Pubkey, ...]) -> TxResult:
    """The outcome as a :class:`TxResult`, always under the transaction's own signature."""
    if isinstance(outcome, FailedTransactionMetadata):
        meta = outcome.meta()
        failure: TransactionFailure | None = parse_transaction_error(outcome.err())
    else:
        meta, failure = outcome, None
    executed = litesvm_executed(tx, outcome)
    signature = tx.signatures[0] if tx.signatures else meta.signature()
    return TxResult(signature, tuple(meta.logs()), meta.compute_units_consumed(), failure, instruction_programs,
                    executed=executed)


def _instruction_programs(tx: Transaction) -> tuple[Pubkey, ...]:
    """The program id of each top-level instruction of a signed transaction, in order."""
    keys = tx.message.account_keys
    return tuple(keys[ix.program_id_index] for ix in tx.message.instructions)


class RpcChain:
    """A cluster through JSON-RPC (solana-py's AsyncClient).

    ``funder`` pays for :meth:`fund` by a System transfer; without it, :meth:`fund` asks for an airdrop
    (local validator, devnet). ``poll_interval`` is how often confirmation and slots are polled.
    """

    def __init__(
        self,
        url: str,
        *,
        commitment: str = "confirmed",
        funder: Keypair | None = None,
        poll_interval: float = 0.4,
        timeout: float = 60.0,
    ) -> None:
        from solana.rpc.async_api import AsyncClient  # the backend's dependency, not LiteSVM users'
        from solana.rpc.commitment import Commitment

        self.url = url
        self.commitment = Commitment(commitment)
        self.funder = funder
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.client = AsyncClient(url, commitment=self.commitment, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.client.close()

    async def _call(self, what: str, coro: Any) -> Any:
        from solana.exceptions import SolanaRpcException
        from solana.rpc.core import RPCException

        try:
            return await coro
        except (SolanaRpcException, RPCException, OSError) as exc:
            raise ChainError(f"{self.url}: {what} failed: {exc}") from exc

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        return await self.send_signed_transaction(_sign(instructions, signers, await self.latest_blockhash()))

    async def send_signed_transaction(self, tx: Transaction) -> TxResult:
        from solana.rpc.core import RPCException
        from solana.rpc.models import TxOpts
        from solders.rpc.errors import SendTransactionPreflightFailureMessage

        opts = TxOpts(skip_confirmation=True, preflight_commitment=self.commitment)
        try:
            sent = await self.client.send_raw_transaction(bytes(tx), opts=opts)
        except RPCException as exc:
            detail = exc.args[0] if exc.args else None
            if isinstance(detail, SendTransactionPreflightFailureMessage) and detail.data.err is not None:
                sim = detail.data
                return TxResult(tx.signatures[0], tuple(sim.logs or ()), sim.units_consumed or 0,
                                parse_transaction_error(sim.err), _instruction_programs(tx), executed=False)
            raise ChainError(f"{self.url}: sendTransaction failed: {exc}") from exc
        signature = sent.value
        await self._confirm(signature)
        found = await self._call(
            "getTransaction",
            self.client.get_transaction(signature, encoding="json", commitment=self.commitment,
                                        max_supported_transaction_version=0),
        )
        if found.value is None or found.value.transaction.meta is None:
            raise ChainError(f"{self.url}: transaction {signature} confirmed but not returned")
        meta = found.value.transaction.meta
        failure = parse_transaction_error(meta.err) if meta.err is not None else None
        return TxResult(signature, tuple(meta.log_messages or ()), meta.compute_units_consumed or 0, failure,
                        _instruction_programs(tx))

    async def _confirm(self, signature: Signature) -> None:
        from solana.rpc.core import UnconfirmedTxError

        try:
            await asyncio.wait_for(
                self.client.confirm_transaction(signature, self.commitment, sleep_seconds=self.poll_interval),
                self.timeout,
            )
        except (TimeoutError, UnconfirmedTxError) as exc:
            raise ChainError(f"{self.url}: transaction {signature} not confirmed in {self.timeout}s") from exc

    async def get_account(self, pubkey: Pubkey) -> Account | None:
        resp = await self._call("getAccountInfo", self.client.get_account_info(pubkey))
        value: Account | None = resp.value
        return value

    async def fund(self, pubkey: Pubkey, lamports: int) -> None:
        if self.funder is not None:
            ix = transfer(TransferParams(from_pubkey=self.funder.pubkey(), to_pubkey=pubkey, lamports=lamports))
            (await self.send_transaction([ix], [self.funder])).raise_for_failure()
            return
        resp = await self._call("requestAirdrop", self.client.request_airdrop(pubkey, lamports))
        await self._confirm(resp.value)

    async def latest_blockhash(self) -> Hash:
        resp = await self._call("getLatestBlockhash", self.client.get_latest_blockhash())
        blockhash: Hash = resp.value.blockhash
        return blockhash

    async def minimum_balance(self, data_len: int) -> int:
        resp = await self._call("getMinimumBalanceForRentExemption",
                                self.client.get_minimum_balance_for_rent_exemption(data_len))
        return int(resp.value)

    async def wait_for_next_slot(self) -> None:
        start = (await self._call("getSlot", self.client.get_slot())).value
        async with asyncio.timeout(self.timeout):
            while True:  # polling: JSON-RPC over HTTP has no slot notification
                await asyncio.sleep(self.poll_interval)
                if (await self._call("getSlot", self.client.get_slot())).value > start:
                    return
