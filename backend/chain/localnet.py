"""A local validator for development and tests: the persistent embedded chain served over JSON-RPC.

    gridtokenx backend localnet --data-dir /var/lib/gridtokenx-localnet --port 8899

:class:`LocalnetServer` extends programs.client.litesvm_rpc.LiteSVMRpcServer (which serves what
``RpcChain`` needs) with what an indexer needs of a cluster, answered from the chain's journal
(backend/chain/persistent.py):

- ``getTransaction`` with the transaction (``base64`` encoding), logs, error, fee, compute units, block
  time and ``preTokenBalances``/``postTokenBalances``;
- ``getSignaturesForAddress`` (``before``, ``until``, ``limit``; newest first, with ``transactionIndex``);
- ``getBlock`` (``transactionDetails: "signatures"``), ``getBlockTime``, ``getMultipleAccounts``;
- ``sendTransaction`` runs the preflight simulation first, as a validator does: a transaction refused
  in preflight is not executed (no fee, not in the journal). With ``skipPreflight`` a transaction that
  cannot run (fee payer without SOL, a replay, a message that does not sanitize) is refused the same way
  after LiteSVM turned it down, never answered with LiteSVM's placeholder signature.

Slots advance on a timer; the chain's unix time follows the wall clock (plus the chain's ``time_offset``).
Several backend processes can share one localnet: this is how the tests run "the chain over JSON-RPC".
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from solders.account_decoder import UiTokenAmount
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetMultipleAccountsResp,
    GetSignaturesForAddressResp,
    GetSignatureStatusesResp,
    GetTransactionResp,
    RpcConfirmedTransactionStatusWithSignature,
    RpcSimulateTransactionResult,
)
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    TransactionConfirmationStatus,
    TransactionStatus,
    UiTransactionStatusMeta,
    UiTransactionTokenBalance,
)
from spl.token.constants import TOKEN_PROGRAM_ID

from backend.chain.persistent import JournalEntry, PersistentLiteSVMChain, TokenBalance
from programs.client.chain import litesvm_executed
from programs.client.litesvm_rpc import LiteSVMRpcServer, _error, _result, _with_id

__all__ = ["LocalnetServer"]

_DECIMALS = 9  # reported in token balances; the indexer reads base-unit amounts, never ui amounts


class LocalnetServer(LiteSVMRpcServer):
    """Serve ``chain`` over JSON-RPC on 127.0.0.1 (``port`` 0: a free one) until the context exits."""

    def __init__(self, chain: PersistentLiteSVMChain, *, slot_interval: float = 0.05, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        super().__init__(chain.svm, slot_interval=slot_interval)
        self.chain = chain
        self.port = port
        self.host = host

    async def __aenter__(self) -> LocalnetServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        self._ticker = asyncio.create_task(self._tick(), name="localnet-slots")
        return self

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.slot_interval)
            self.chain.next_slot()

    # -- methods ------------------------------------------------------------------------------------

    def _rpc_sendTransaction(self, rid: Any, params: list[Any]) -> str:
        options = params[1] if len(params) > 1 else {}
        if options.get("encoding", "base58") != "base64":
            return _error(rid, -32602, "only base64 transactions are supported")
        tx = VersionedTransaction.from_bytes(base64.b64decode(params[0]))
        if not options.get("skipPreflight", False):
            simulated = self.svm.simulate_transaction(tx)
            if isinstance(simulated, FailedTransactionMetadata):
                return _preflight_error(rid, simulated)
        outcome = self.chain.execute(tx)
        if isinstance(outcome, FailedTransactionMetadata) and not litesvm_executed(tx, outcome):
            # Refused before it ran (skipPreflight): nothing happened and nothing was journaled. A validator
            # would drop it silently; say why, as preflight would have, rather than hand out a signature
            # that will never have a status.
            return _preflight_error(rid, outcome)
        return _result(rid, str(tx.signatures[0]))

    def _rpc_requestAirdrop(self, rid: Any, params: list[Any]) -> str:
        pubkey = Pubkey.from_string(params[0])
        outcome = self.svm.airdrop(pubkey, int(params[1]))
        if isinstance(outcome, FailedTransactionMetadata):
            return _error(rid, -32600, f"airdrop failed: {outcome.err()}")
        account = self.svm.get_account(pubkey)
        if account is not None:
            self.chain.set_account(pubkey, account)  # kept across restarts
        self._executed[outcome.signature()] = _airdrop(self._slot(), outcome)
        return _result(rid, str(outcome.signature()))

    def _rpc_getMultipleAccounts(self, rid: Any, params: list[Any]) -> str:
        accounts = []
        for text in params[0][:100]:
            account = self.svm.get_account(Pubkey.from_string(text))
            accounts.append(None if account is None or (account.lamports == 0 and not account.data) else account)
        return _with_id(GetMultipleAccountsResp(accounts, self._context()).to_json(), rid)

    def _rpc_getSignatureStatuses(self, rid: Any, params: list[Any]) -> str:
        statuses: list[TransactionStatus | None] = []
        for text in params[0]:
            signature = Signature.from_string(text)
            entry = self.chain.journal_entry(signature)
            if entry is not None:
                statuses.append(TransactionStatus(entry.slot, None, None, entry.err,
                                                  TransactionConfirmationStatus.Finalized))
            elif signature in self._executed:  # an airdrop
                statuses.append(TransactionStatus(self._executed[signature].slot, None, None, None,
                                                  TransactionConfirmationStatus.Finalized))
            else:
                statuses.append(None)
        return _with_id(GetSignatureStatusesResp(statuses, self._context()).to_json(), rid)

    def _rpc_getTransaction(self, rid: Any, params: list[Any]) -> str:
        entry = self.chain.journal_entry(Signature.from_string(params[0]))
        if entry is None:
            return super()._rpc_getTransaction(rid, params)  # airdrops
        keys = list(entry.transaction.message.account_keys)
        meta = UiTransactionStatusMeta(
            entry.err, entry.fee, [], [], log_messages=list(entry.logs),
            pre_token_balances=[_ui_balance(keys, b) for b in entry.pre_token_balances],
            post_token_balances=[_ui_balance(keys, b) for b in entry.post_token_balances],
            compute_units_consumed=entry.compute_units,
        )
        tx = EncodedTransactionWithStatusMeta(entry.transaction, meta, None)
        response = GetTransactionResp(EncodedConfirmedTransactionWithStatusMeta(entry.slot, tx, entry.block_time))
        return _with_id(response.to_json(), rid)

    def _rpc_getSignaturesForAddress(self, rid: Any, params: list[Any]) -> str:
        address = Pubkey.from_string(params[0])
        options = params[1] if len(params) > 1 and params[1] else {}
        limit = min(int(options.get("limit") or 1000), 1000)
        before = options.get("before")
        until = options.get("until")
        found: list[RpcConfirmedTransactionStatusWithSignature] = []
        started = before is None
        for entry in self.chain.journal_for_address(address):
            signature = str(entry.signature)
            if not started:
                started = signature == before
                continue
            if signature == until or len(found) >= limit:
                break
            found.append(RpcConfirmedTransactionStatusWithSignature(
                entry.signature, entry.slot, entry.err, None, entry.block_time,
                TransactionConfirmationStatus.Finalized, self._index_in_slot(entry)))
        return _with_id(GetSignaturesForAddressResp(found).to_json(), rid)

    def _index_in_slot(self, entry: JournalEntry) -> int:
        return next(i for i, e in enumerate(self.chain.journal_in_slot(entry.slot)) if e.position == entry.position)

    def _rpc_getBlock(self, rid: Any, params: list[Any]) -> str:
        slot = int(params[0])
        entries = self.chain.journal_in_slot(slot)
        block_time = entries[0].block_time if entries else self.chain.now()
        value = {
            "blockhash": str(Hash.default()), "previousBlockhash": str(Hash.default()), "parentSlot": max(slot - 1, 0),
            "signatures": [str(e.signature) for e in entries], "blockTime": block_time, "blockHeight": slot,
        }
        return _result(rid, value)

    def _rpc_getBlockTime(self, rid: Any, params: list[Any]) -> str:
        entries = self.chain.journal_in_slot(int(params[0]))
        return _result(rid, entries[0].block_time if entries else self.chain.now())


def _preflight_error(rid: Any, failed: FailedTransactionMetadata) -> str:
    """sendTransaction's refusal as a validator words a failed preflight (-32002 with the simulation)."""
    meta, err = failed.meta(), failed.err()
    sim = RpcSimulateTransactionResult(err=err, logs=list(meta.logs()), units_consumed=meta.compute_units_consumed())
    return _error(rid, -32002, f"Transaction simulation failed: {err}", json.loads(sim.to_json()))


def _ui_balance(keys: list[Pubkey], balance: TokenBalance) -> UiTransactionTokenBalance:
    amount = UiTokenAmount(None, _DECIMALS, str(balance.amount), str(balance.amount))
    return UiTransactionTokenBalance(keys.index(balance.account), balance.mint, amount, balance.owner,
                                     TOKEN_PROGRAM_ID)


def _airdrop(slot: int, meta: Any) -> Any:
    from programs.client.litesvm_rpc import _Executed, _placeholder_tx

    return _Executed(slot, _placeholder_tx(), meta, None)
