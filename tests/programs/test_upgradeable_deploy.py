"""deploy_upgradeable through the BPF Upgradeable Loader in LiteSVM (its deploy-time ELF checks included)."""

from __future__ import annotations

import struct

import pytest
from solders.keypair import Keypair

from programs.client import LiteSVMChain, TransactionFailed, deploy_upgradeable, program_so, upgrade
from programs.client.deploy import BPF_LOADER_UPGRADEABLE_ID, PROGRAMDATA_METADATA_LEN, programdata_address
from programs.hello import client as hello

pytestmark = pytest.mark.chain


async def test_deploy_then_invoke_then_upgrade(payer: Keypair) -> None:
    chain = LiteSVMChain()
    await chain.fund(payer.pubkey(), 10 * 10**9)
    so = program_so("hello")
    program = Keypair()
    deployed = await deploy_upgradeable(chain, so, program, payer)
    assert deployed.program_id == program.pubkey()
    assert deployed.programdata == programdata_address(program.pubkey())

    account = await chain.get_account(program.pubkey())
    assert account is not None and account.executable and account.owner == BPF_LOADER_UPGRADEABLE_ID
    assert bytes(account.data) == struct.pack("<I", 2) + bytes(deployed.programdata)
    data = await chain.get_account(deployed.programdata)
    assert data is not None
    raw = bytes(data.data)
    assert len(raw) == PROGRAMDATA_METADATA_LEN + 2 * len(so)
    assert raw[13:45] == bytes(payer.pubkey())  # upgrade authority
    assert raw[PROGRAMDATA_METADATA_LEN : PROGRAMDATA_METADATA_LEN + len(so)] == so

    ix = hello.initialize(program.pubkey(), payer.pubkey())
    (await chain.send_transaction([ix], [payer])).raise_for_failure()
    (await chain.send_transaction([hello.greet(program.pubkey(), payer.pubkey(), 2)], [payer])).raise_for_failure()

    await upgrade(chain, so, program.pubkey(), payer)
    (await chain.send_transaction([hello.greet(program.pubkey(), payer.pubkey(), 3)], [payer])).raise_for_failure()
    greeting = await chain.get_account(hello.greeting_address(program.pubkey(), payer.pubkey())[0])
    assert greeting is not None and hello.Greeting.decode(bytes(greeting.data)).total == 5


async def test_loader_refuses_a_broken_elf() -> None:
    chain = LiteSVMChain()
    payer = Keypair()
    await chain.fund(payer.pubkey(), 10 * 10**9)
    so = bytearray(program_so("hello"))
    so[18] = 0x3E  # e_machine = x86-64
    with pytest.raises(TransactionFailed, match="InvalidAccountData"):
        await deploy_upgradeable(chain, bytes(so), Keypair(), payer)
