"""Python side shared by the program clients: the chain interface, deployment, errors, artifacts."""

from programs.client.artifacts import ProgramNotBuilt, program_so, program_so_path
from programs.client.chain import Chain, ChainError, LiteSVMChain, RpcChain, TransactionFailed, TxResult
from programs.client.deploy import (
    DeployedProgram,
    add_program_with_authority,
    deploy_upgradeable,
    programdata_address,
    upgrade,
)
from programs.client.ed25519 import ED25519_PROGRAM_ID, ed25519_verify_instruction
from programs.client.errors import ProgramErrors, TransactionFailure, parse_transaction_error

__all__ = [
    "ED25519_PROGRAM_ID",
    "Chain",
    "ChainError",
    "DeployedProgram",
    "LiteSVMChain",
    "ProgramErrors",
    "ProgramNotBuilt",
    "RpcChain",
    "TransactionFailed",
    "TransactionFailure",
    "TxResult",
    "add_program_with_authority",
    "deploy_upgradeable",
    "ed25519_verify_instruction",
    "parse_transaction_error",
    "program_so",
    "program_so_path",
    "programdata_address",
    "upgrade",
]
