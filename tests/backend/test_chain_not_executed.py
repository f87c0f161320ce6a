"""A transaction that fails before it executes (fee payer without SOL, unknown blockhash, a message that
does not sanitize, a replay) changed nothing on chain: the embedded chain must not journal it (LiteSVM
reports it under the all-zero placeholder signature, which the journal's UNIQUE signature refused the
second time), and the caller gets the chain's error by name, under the transaction's own signature —
directly, through ``send_signed_transaction``, and over JSON-RPC (``backend localnet``'s sendTransaction,
with and without preflight). A chain.db written before this fix, holding such a row, loses it at start-up
and the audit's state-file reader never counts it."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from solders.hash import Hash
from solders.instruction import CompiledInstruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from audit.statefile import StateFileSource
from backend.chain.localnet import LocalnetServer
from backend.chain.persistent import PersistentLiteSVMChain
from programs.client.chain import RpcChain

pytestmark = pytest.mark.chain

PLACEHOLDER = str(Signature.default())


def _pay(payer: Keypair, to: Pubkey, lamports: int, blockhash: Hash) -> Transaction:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    return Transaction([payer], Message([ix], payer.pubkey()), blockhash)


def _journal_rows(directory: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(directory / "chain.db") as db:
        return [(int(p), str(s), e) for p, s, e in db.execute("SELECT position, signature, err FROM journal")]


async def test_failures_before_execution_are_named_and_never_journaled(tmp_path: Path) -> None:
    chain = PersistentLiteSVMChain(tmp_path / "chain")
    try:
        rich = Keypair()
        await chain.fund(rich.pubkey(), 10**9)
        done = await chain.send_transaction(
            [transfer(TransferParams(from_pubkey=rich.pubkey(), to_pubkey=Keypair().pubkey(), lamports=10**6))],
            [rich])
        assert done.ok
        journaled = chain.journal_length
        assert journaled == 1

        for _ in range(2):  # the second used to hit UNIQUE constraint failed: journal.signature
            poor = Keypair()
            result = await chain.send_transaction(
                [transfer(TransferParams(from_pubkey=poor.pubkey(), to_pubkey=rich.pubkey(), lamports=1))], [poor])
            assert result.failure is not None and result.failure.kind == "AccountNotFound"
            assert result.executed is False and str(result.signature) != PLACEHOLDER

        poor = Keypair()
        signed = _pay(poor, rich.pubkey(), 1, await chain.latest_blockhash())
        result = await chain.send_signed_transaction(signed)
        assert (result.failure and result.failure.kind, result.executed) == ("AccountNotFound", False)
        assert result.signature == signed.signatures[0]

        stale = _pay(rich, poor.pubkey(), 5, Hash.new_unique())
        result = await chain.send_signed_transaction(stale)
        assert (result.failure and result.failure.kind, result.executed) == ("BlockhashNotFound", False)

        # The same key twice in a message: it does not sanitize.
        twice = Message.new_with_compiled_instructions(
            1, 0, 1, [rich.pubkey(), rich.pubkey(), SYSTEM_PROGRAM_ID], await chain.latest_blockhash(),
            [CompiledInstruction(2, bytes([2, 0, 0, 0]) + (7).to_bytes(8, "little"), bytes([0, 1]))])
        result = await chain.send_signed_transaction(Transaction([rich], twice, twice.recent_blockhash))
        assert (result.failure and result.failure.kind, result.executed) == ("AccountLoadedTwice", False)

        # A replay of a transaction that did execute: AlreadyProcessed, and the journal keeps the original once.
        good = _pay(rich, poor.pubkey(), 10**6, await chain.latest_blockhash())
        assert (await chain.send_signed_transaction(good)).ok
        replay = await chain.send_signed_transaction(good)
        assert (replay.failure and replay.failure.kind, replay.executed) == ("AlreadyProcessed", False)

        # A transaction that executed and failed is journaled, as on a cluster (it paid its fee).
        short = await chain.send_transaction(
            [transfer(TransferParams(from_pubkey=rich.pubkey(), to_pubkey=poor.pubkey(), lamports=10**15))], [rich])
        assert short.failure is not None and short.failure.kind == "InstructionError" and short.executed

        rows = _journal_rows(tmp_path / "chain")
        assert [s for _, s, _ in rows] == [str(done.signature), str(good.signatures[0]), str(short.signature)]
        assert chain.journal_length == 3 and PLACEHOLDER not in {s for _, s, _ in rows}
        assert chain.journal_entry(Signature.default()) is None
    finally:
        chain.close()


async def _raw_send(url: str, tx: Transaction, *, skip_preflight: bool) -> dict[str, object]:
    payload = {"jsonrpc": "2.0", "id": 1, "method": "sendTransaction",
               "params": [base64.b64encode(bytes(tx)).decode(),
                          {"encoding": "base64", "skipPreflight": skip_preflight}]}
    async with httpx.AsyncClient() as http:
        reply: dict[str, object] = (await http.post(url, json=payload)).json()
        return reply


async def test_localnet_refuses_what_would_not_execute_with_and_without_preflight(tmp_path: Path) -> None:
    chain = PersistentLiteSVMChain(tmp_path / "chain", blockhash_check=False, slot_per_transaction=False)
    try:
        async with LocalnetServer(chain, slot_interval=0.02) as server, \
                RpcChain(server.url, poll_interval=0.02, timeout=10) as rpc:
            rich = Keypair()
            await rpc.fund(rich.pubkey(), 10**9)
            before = chain.journal_length
            for _ in range(2):
                poor = Keypair()
                result = await rpc.send_signed_transaction(_pay(poor, rich.pubkey(), 1, await rpc.latest_blockhash()))
                assert (result.failure and result.failure.kind, result.executed) == ("AccountNotFound", False)
                for skip in (False, True):
                    tx = _pay(poor, rich.pubkey(), 2 + skip, await rpc.latest_blockhash())
                    reply = await _raw_send(server.url, tx, skip_preflight=skip)
                    error = reply.get("error")
                    assert isinstance(error, dict) and "AccountNotFound" in json.dumps(error), reply
            good = _pay(rich, Keypair().pubkey(), 10**6, await rpc.latest_blockhash())
            assert (await rpc.send_signed_transaction(good)).ok
            replayed = await _raw_send(server.url, good, skip_preflight=True)
            assert "AlreadyProcessed" in json.dumps(replayed.get("error")), replayed
            assert chain.journal_length == before + 1
            statuses = await rpc.client.get_signature_statuses([Signature.default()])
            assert statuses.value == [None]
            assert [s for _, s, _ in _journal_rows(tmp_path / "chain")][-1] == str(good.signatures[0])
    finally:
        chain.close()


async def test_a_journal_row_of_a_transaction_that_never_ran_is_dropped_and_not_audited(tmp_path: Path) -> None:
    directory = tmp_path / "chain"
    chain = PersistentLiteSVMChain(directory)
    try:
        rich = Keypair()
        await chain.fund(rich.pubkey(), 10**9)
        first = await chain.send_transaction(
            [transfer(TransferParams(from_pubkey=rich.pubkey(), to_pubkey=Keypair().pubkey(), lamports=10**6))],
            [rich])
        assert first.ok
    finally:
        chain.close()
    # What a backend before this fix wrote for a fee payer without SOL: the placeholder signature.
    poor = Keypair()
    never = _pay(poor, rich.pubkey(), 1, Hash.new_unique())
    with sqlite3.connect(directory / "chain.db") as db:
        slot = db.execute("SELECT max(slot) FROM journal").fetchone()[0]
        db.execute("INSERT INTO journal VALUES (2, ?, ?, 0, ?, '[]', ?, 0, 5000, '[]', '[]')",
                   (PLACEHOLDER, slot, bytes(never), json.dumps({"fieldless": "AccountNotFound"})))

    source = StateFileSource(directory)
    try:
        assert [i.signature for i in source.signatures(poor.pubkey())] == []
        assert [i.signature for i in source.signatures(rich.pubkey())] == [str(first.signature)]
        assert source.transaction(PLACEHOLDER) is None
    finally:
        source.close()

    chain = PersistentLiteSVMChain(directory)  # the restart drops the row; positions stay as they were
    try:
        assert [str(e.signature) for e in chain.journal_after(0)] == [str(first.signature)]
        again = await chain.send_transaction(
            [transfer(TransferParams(from_pubkey=rich.pubkey(), to_pubkey=Keypair().pubkey(), lamports=10**6))],
            [rich])
        assert again.ok
        assert [(e.position, str(e.signature)) for e in chain.journal_after(0)] == [
            (1, str(first.signature)), (3, str(again.signature))]
        assert [str(e.signature) for e in chain.journal_after(1)] == [str(again.signature)]
        assert [p for p, _, _ in _journal_rows(directory)] == [1, 3]
    finally:
        chain.close()
