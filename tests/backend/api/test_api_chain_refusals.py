"""What the chain refuses before running it reaches the wallet as the chain's error by name, never as an
HTTP 500, and leaves nothing behind: a wallet without SOL paying its own fee (twice: the second used to
hit the embedded chain's journal under LiteSVM's placeholder signature), the api's own fee payer without
SOL, a replayed signed transaction (twice), a signed transaction whose intent has expired. Both with the
embedded chain and with the chain over JSON-RPC (the localnet's sendTransaction preflight)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from solders.keypair import Keypair

from tests.backend.api.api_support import RunningApi, TestWallet, running_api
from tests.backend.api.test_api_market import refused, registered
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain]


@pytest.fixture(params=["embedded", "json-rpc"])
async def api(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    async with running_api(pg_url, tmp_path, over_rpc=request.param == "json-rpc") as running:
        yield running


async def _applied(api: RunningApi) -> int:
    return int((await api.storage.fetch("SELECT count(*) FROM chain_transactions"))[0][0])


def _never_ran(reply: Any, code: str) -> None:
    refused(reply, 422, code)
    detail = reply.json()["error"]["detail"]
    assert detail["executed"] is False and "nothing happened on chain" in reply.json()["error"]["message"]


async def test_refused_before_running_is_named_and_leaves_nothing(api: RunningApi) -> None:
    position, applied = api.chain.journal_position, await _applied(api)
    for name in ("Penniless", "Broke"):  # each wallet pays its own fee here, and has no SOL at all
        wallet = TestWallet()
        await wallet.sign_in(api.http)
        prepared = (await api.http.post("/users", json={"name": name, "kind": "consumer"},
                                        headers=wallet.headers())).json()
        _never_ran(await wallet.sign_and_submit(api.http, prepared), "AccountNotFound")
        assert (await api.http.get("/users/me", headers=wallet.headers())).json()["profile"] is None
    assert api.chain.journal_position == position  # nothing journaled, nothing for the indexer
    await api.indexed()
    assert await _applied(api) == applied

    # A wallet that pays goes through; the same signed transaction again is a replay, refused by name each time.
    payer = TestWallet()
    await api.chain.fund(payer.key.pubkey(), 10**9)
    await payer.sign_in(api.http)
    prepared = (await api.http.post("/users", json={"name": "Payer", "kind": "consumer"},
                                    headers=payer.headers())).json()
    assert (await payer.sign_and_submit(api.http, prepared)).status_code == 200
    position = api.chain.journal_position
    for _ in range(2):
        _never_ran(await payer.sign_and_submit(api.http, prepared), "AlreadyProcessed")
    assert api.chain.journal_position == position

    # A transaction signed for an intent that has expired is refused before it is sent.
    seller = await registered(api, "prosumer", "Seller")
    prepared = (await api.http.post("/meters", json={"meter_id": "m-late", "public_key": "11" * 32},
                                    headers=seller.headers())).json()
    claims = jwt.decode(prepared["intent"], options={"verify_signature": False})
    stale = api.ctx.tokens.intent({k: claims[k] for k in ("sub", "act", "msg", "det")}, -1)
    refused(await seller.sign_and_submit(api.http, {**prepared, "intent": stale}), 409, "intent_expired")
    assert api.chain.journal_position == position + 1  # the seller's registration, nothing else


async def test_the_apis_own_fee_payer_without_sol_is_named(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    payer = Keypair()  # never funded
    async with running_api(pg_url, tmp_path, fee_payer=payer) as api:
        position = api.chain.journal_position
        for name in ("One", "Two"):
            wallet = TestWallet()
            await api.chain.fund(wallet.key.pubkey(), 10**9)
            await wallet.sign_in(api.http)
            prepared = (await api.http.post("/users", json={"name": name, "kind": "consumer"},
                                            headers=wallet.headers())).json()
            assert prepared["fee_payer"] == str(payer.pubkey())
            _never_ran(await wallet.sign_and_submit(api.http, prepared), "AccountNotFound")
        assert api.chain.journal_position == position
