"""RpcChain over real HTTP JSON-RPC (solana-py's AsyncClient) against LiteSVMRpcServer: the code path a
cluster uses — deploy through the Upgradeable Loader, invoke, and program errors from preflight."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import Chain, ChainError, LiteSVMChain, RpcChain, deploy_upgradeable, program_so
from programs.client.litesvm_rpc import LiteSVMRpcServer
from programs.hello import client as hello

pytestmark = pytest.mark.chain


async def test_deploy_invoke_and_errors_over_json_rpc() -> None:
    async with LiteSVMRpcServer() as server, RpcChain(server.url, poll_interval=0.02) as chain:
        assert isinstance(chain, Chain)
        authority = Keypair()
        await chain.fund(authority.pubkey(), 10 * 10**9)
        account = await chain.get_account(authority.pubkey())
        assert account is not None and account.lamports == 10 * 10**9
        assert await chain.get_account(Pubkey.new_unique()) is None
        assert await chain.minimum_balance(50) == server.svm.minimum_balance_for_rent_exemption(50)

        deployed = await deploy_upgradeable(chain, program_so("hello"), Keypair(), authority)
        program = deployed.program_id
        ok = await chain.send_transaction([hello.initialize(program, authority.pubkey())], [authority])
        assert ok.failure is None and "Program log: hello: greeting created" in ok.logs
        assert ok.compute_units > 0
        greet = await chain.send_transaction([hello.greet(program, authority.pubkey(), 9)], [authority])
        [event] = hello.decode_events(greet.raise_for_failure(), program)
        assert isinstance(event, hello.Greeted) and (event.amount, event.count) == (9, 1)

        failed = await chain.send_transaction([hello.greet(program, authority.pubkey(), 2**64 - 1)], [authority])
        assert failed.failure is not None and failed.failure.error == "ArithmeticOverflow"
        assert any("arithmetic overflowed" in line for line in failed.logs)

        # A funder pays for fund() by transfer, as on a cluster without airdrops.
        funded = RpcChain(server.url, poll_interval=0.02, funder=authority)
        async with funded:
            someone = Keypair().pubkey()
            await funded.fund(someone, 5_000_000)
            got = await funded.get_account(someone)
            assert got is not None and got.lamports == 5_000_000


async def test_same_transactions_on_litesvm_and_rpc_agree() -> None:
    """One client function, two chains: identical outcomes."""

    async def scenario(chain: Chain) -> list[str | None]:
        key = Keypair()
        await chain.fund(key.pubkey(), 10 * 10**9)
        program = (await deploy_upgradeable(chain, program_so("hello"), Keypair(), key)).program_id
        outcomes = []
        for ixs in ([hello.initialize(program, key.pubkey())], [hello.initialize(program, key.pubkey())],
                    [hello.greet(program, key.pubkey(), 1)]):
            result = await chain.send_transaction(ixs, [key])
            outcomes.append(None if result.failure is None else result.failure.error)
        return outcomes

    async with LiteSVMChain() as local:
        expected = await scenario(local)
    async with LiteSVMRpcServer() as server, RpcChain(server.url, poll_interval=0.02) as remote:
        assert await scenario(remote) == expected == [None, "AccountAlreadyInitialized", None]


async def test_unreachable_endpoint_is_a_chain_error() -> None:
    async with LiteSVMRpcServer() as server:
        url = server.url
    async with RpcChain(url, timeout=2) as chain:
        with pytest.raises(ChainError, match=f"{url}: getLatestBlockhash failed"):
            await chain.latest_blockhash()
