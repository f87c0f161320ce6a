"""Deploy and upgrade programs through the BPF Upgradeable Loader, the same way on LiteSVM and a cluster.

The loader's instructions are bincode (u32 LE variant, then the fields):
  0 InitializeBuffer            accounts: buffer [w], authority []
  1 Write {u32 offset, bytes}   accounts: buffer [w], authority [s]; bytes as u64 LE length + data
  2 DeployWithMaxDataLen {u64}  accounts: payer [w,s], programdata [w], program [w], buffer [w],
                                          rent sysvar, clock sysvar, System program, authority [s]
  3 Upgrade                     accounts: programdata [w], program [w], buffer [w], spill [w],
                                          rent sysvar, clock sysvar, authority [s]
Account sizes: buffer 37 + len (u32 tag, Option<Pubkey> authority), program 36 (u32 tag, programdata
address), programdata 45 + max_data_len (u32 tag, u64 slot, Option<Pubkey> authority).

``add_program_with_authority`` is the LiteSVM-only shortcut for tests and benches: the result is what a
deploy by that authority would leave, without the ~60 Write transactions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.account import Account
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import CreateAccountParams, create_account
from solders.sysvar import CLOCK, RENT
from solders.transaction import Transaction

from programs.client.chain import Chain, LiteSVMChain

__all__ = [
    "BPF_LOADER_UPGRADEABLE_ID",
    "DeployedProgram",
    "add_program_with_authority",
    "deploy_upgradeable",
    "programdata_address",
    "upgrade",
    "write_buffer",
]

BPF_LOADER_UPGRADEABLE_ID = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
BUFFER_METADATA_LEN = 37
PROGRAM_ACCOUNT_LEN = 36
PROGRAMDATA_METADATA_LEN = 45
PACKET_DATA_SIZE = 1232  # the largest serialized transaction
_PROGRAMDATA_AUTHORITY = slice(12, 45)  # Option tag + authority (programs/include/gtx/upgradeable.h)


@dataclass(frozen=True)
class DeployedProgram:
    program_id: Pubkey
    programdata: Pubkey
    authority: Pubkey
    max_data_len: int


def programdata_address(program_id: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(program_id)], BPF_LOADER_UPGRADEABLE_ID)[0]


def add_program_with_authority(chain: LiteSVMChain, program_id: Pubkey, so: bytes, authority: Pubkey) -> None:
    """LiteSVM only: load ``so`` as ``add_program`` does (upgradeable loader, no upgrade authority), then
    record ``authority`` as its upgrade authority in the ProgramData account, as a deploy by that key would
    have. Programs that only let their upgrade authority initialise them need this; much faster than
    :func:`deploy_upgradeable`, which tests/programs/test_upgradeable_deploy.py covers for real."""
    chain.add_program(program_id, so)
    address = programdata_address(program_id)
    account = chain.svm.get_account(address)
    if account is None or account.owner != BPF_LOADER_UPGRADEABLE_ID:
        raise RuntimeError(f"LiteSVM did not create ProgramData {address} for {program_id}")
    data = bytearray(account.data)
    data[_PROGRAMDATA_AUTHORITY] = b"\x01" + bytes(authority)
    chain.svm.set_account(address, Account(account.lamports, bytes(data), account.owner, account.executable,
                                           account.rent_epoch))


def _initialize_buffer_ix(buffer: Pubkey, authority: Pubkey) -> Instruction:
    return Instruction(BPF_LOADER_UPGRADEABLE_ID, struct.pack("<I", 0),
                       [AccountMeta(buffer, False, True), AccountMeta(authority, False, False)])


def _write_ix(buffer: Pubkey, authority: Pubkey, offset: int, chunk: bytes) -> Instruction:
    data = struct.pack("<IIQ", 1, offset, len(chunk)) + chunk
    return Instruction(BPF_LOADER_UPGRADEABLE_ID, data,
                       [AccountMeta(buffer, False, True), AccountMeta(authority, True, False)])


def _chunk_size(payer: Keypair, authority: Keypair, buffer: Pubkey) -> int:
    """The largest Write payload whose transaction still fits in one packet."""
    signers = [payer] if payer.pubkey() == authority.pubkey() else [payer, authority]
    probe = _write_ix(buffer, authority.pubkey(), 0, b"")
    size = len(bytes(Transaction(signers, Message([probe], payer.pubkey()), Hash.default())))
    return PACKET_DATA_SIZE - size - 2  # the data length prefix grows by up to 2 bytes


def _signers(*keys: Keypair) -> list[Keypair]:
    seen: dict[Pubkey, Keypair] = {}
    for key in keys:
        seen.setdefault(key.pubkey(), key)
    return list(seen.values())


async def write_buffer(chain: Chain, so: bytes, authority: Keypair, payer: Keypair | None = None) -> Pubkey:
    """Create a buffer account holding ``so``, written in packet-sized chunks; returns its address."""
    payer = payer or authority
    buffer = Keypair()
    size = BUFFER_METADATA_LEN + len(so)
    create = create_account(CreateAccountParams(
        from_pubkey=payer.pubkey(), to_pubkey=buffer.pubkey(), lamports=await chain.minimum_balance(size),
        space=size, owner=BPF_LOADER_UPGRADEABLE_ID,
    ))
    init = _initialize_buffer_ix(buffer.pubkey(), authority.pubkey())
    (await chain.send_transaction([create, init], _signers(payer, buffer))).raise_for_failure()
    step = _chunk_size(payer, authority, buffer.pubkey())
    for offset in range(0, len(so), step):
        ix = _write_ix(buffer.pubkey(), authority.pubkey(), offset, so[offset : offset + step])
        (await chain.send_transaction([ix], _signers(payer, authority))).raise_for_failure()
    return buffer.pubkey()


async def deploy_upgradeable(
    chain: Chain,
    so: bytes,
    program_keypair: Keypair,
    authority: Keypair,
    *,
    payer: Keypair | None = None,
    max_data_len: int | None = None,
) -> DeployedProgram:
    """Deploy ``so`` at ``program_keypair``'s address with ``authority`` as upgrade authority.

    ``max_data_len`` (default: twice the size, as the Solana CLI does) bounds later upgrades. Returns once
    the program can be invoked (the loader makes it visible from the next slot).
    """
    payer = payer or authority
    max_len = max_data_len if max_data_len is not None else 2 * len(so)
    if max_len < len(so):
        raise ValueError(f"max_data_len {max_len} is smaller than the program ({len(so)} bytes)")
    buffer = await write_buffer(chain, so, authority, payer)
    program_id = program_keypair.pubkey()
    programdata = programdata_address(program_id)
    create_program = create_account(CreateAccountParams(
        from_pubkey=payer.pubkey(), to_pubkey=program_id,
        lamports=await chain.minimum_balance(PROGRAM_ACCOUNT_LEN), space=PROGRAM_ACCOUNT_LEN,
        owner=BPF_LOADER_UPGRADEABLE_ID,
    ))
    deploy = Instruction(
        BPF_LOADER_UPGRADEABLE_ID,
        struct.pack("<IQ", 2, max_len),
        [
            AccountMeta(payer.pubkey(), True, True),
            AccountMeta(programdata, False, True),
            AccountMeta(program_id, False, True),
            AccountMeta(buffer, False, True),
            AccountMeta(RENT, False, False),
            AccountMeta(CLOCK, False, False),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
            AccountMeta(authority.pubkey(), True, False),
        ],
    )
    signers = _signers(payer, program_keypair, authority)
    (await chain.send_transaction([create_program, deploy], signers)).raise_for_failure()
    await chain.wait_for_next_slot()
    return DeployedProgram(program_id, programdata, authority.pubkey(), max_len)


async def upgrade(chain: Chain, so: bytes, program_id: Pubkey, authority: Keypair,
                  *, payer: Keypair | None = None) -> None:
    """Replace the program's code with ``so`` (the buffer's lamports go back to ``payer``)."""
    payer = payer or authority
    buffer = await write_buffer(chain, so, authority, payer)
    ix = Instruction(
        BPF_LOADER_UPGRADEABLE_ID,
        struct.pack("<I", 3),
        [
            AccountMeta(programdata_address(program_id), False, True),
            AccountMeta(program_id, False, True),
            AccountMeta(buffer, False, True),
            AccountMeta(payer.pubkey(), False, True),
            AccountMeta(RENT, False, False),
            AccountMeta(CLOCK, False, False),
            AccountMeta(authority.pubkey(), True, False),
        ],
    )
    (await chain.send_transaction([ix], _signers(payer, authority))).raise_for_failure()
    await chain.wait_for_next_slot()
