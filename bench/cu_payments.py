"""Compute units per payments instruction, measured in LiteSVM on the committed programs/payments/payments.so.

    python bench/cu_payments.py          # prints the table
    await measure()  # {"issue": ..., ...}; bench/bench_compute_units.py runs them all

Each figure is the whole transaction for one top-level instruction, CPIs included (System CreateAccount
for the deposit record, Token MintTo / Burn). Keys and references are fixed: creating the deposit record
checks that its bump is canonical, whose cost depends on the reference and the program id.
"""

from __future__ import annotations

import asyncio

from solders.keypair import Keypair

from programs.client import LiteSVMChain, TxResult, program_so
from programs.client.deploy import add_program_with_authority
from programs.payments import client as payments
from programs.trading.sandbox import create_token_account

__all__ = ["measure", "table"]

PAYMENTS_ID = Keypair.from_seed(bytes([0xB5]) * 32).pubkey()


def _units(result: TxResult) -> int:
    result.raise_for_failure()
    return result.compute_units


async def measure() -> dict[str, int]:
    chain = LiteSVMChain()
    admin, operator, customer, mint = (Keypair.from_seed(bytes([n]) * 32) for n in (1, 6, 7, 8))
    for key in (admin, operator, customer):
        await chain.fund(key.pubkey(), 10 * 10**9)
    add_program_with_authority(chain, PAYMENTS_ID, program_so("payments"), admin.pubkey())
    lamports = await chain.minimum_balance(payments.MINT_LEN)
    _units(await chain.send_transaction(payments.create_thbc_mint(admin.pubkey(), mint.pubkey(), PAYMENTS_ID,
                                                                  lamports), [admin, mint]))
    ix = payments.initialize(PAYMENTS_ID, admin.pubkey(), mint.pubkey(), operator.pubkey())
    cu = {"initialize": _units(await chain.send_transaction([ix], [admin]))}
    account = await create_token_account(chain, customer, mint.pubkey(), customer.pubkey())
    ix = payments.issue(PAYMENTS_ID, operator.pubkey(), mint.pubkey(), account, "KBANK-2025-000001", 500 * 10**6)
    cu["issue"] = _units(await chain.send_transaction([ix], [operator]))
    ix = payments.redeem(PAYMENTS_ID, customer.pubkey(), mint.pubkey(), 200 * 10**6, "PAYOUT-000001", account=account)
    cu["redeem"] = _units(await chain.send_transaction([ix], [customer]))
    ix = payments.set_operator(PAYMENTS_ID, admin.pubkey(), customer.pubkey())
    cu["set_operator"] = _units(await chain.send_transaction([ix], [admin]))
    return cu


def table(cu: dict[str, int]) -> str:
    rows = ["| payments instruction | compute units |", "|---|---:|"]
    rows += [f"| {name} | {units:,} |" for name, units in cu.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(asyncio.run(measure())))
