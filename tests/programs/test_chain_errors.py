"""Transaction errors from LiteSVM objects, their JSON text and decoded RPC JSON come out the same."""

from __future__ import annotations

import pytest
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorInsufficientFundsForRent,
)

from programs.client.errors import ProgramErrors, TransactionFailure, parse_transaction_error

TABLE = ProgramErrors("demo", {1: "NotRegistered", 2: "MeterRevoked"})


@pytest.mark.parametrize(
    "err",
    [
        TransactionErrorInstructionError(2, InstructionErrorCustom(2)),
        {"InstructionError": [2, {"Custom": 2}]},
        '{"InstructionError":[2,{"Custom":2}]}',
    ],
)
def test_custom_errors_from_every_source(err: object) -> None:
    failure = parse_transaction_error(err)
    assert failure == TransactionFailure("InstructionError", 2, "Custom", 2)
    assert TABLE.name(failure) == "MeterRevoked"
    assert str(failure) == "instruction 2: Custom(2)"


@pytest.mark.parametrize(
    "err",
    [
        TransactionErrorInstructionError(0, InstructionErrorFieldless.MissingRequiredSignature),
        {"InstructionError": [0, "MissingRequiredSignature"]},
    ],
)
def test_builtin_errors_keep_their_names(err: object) -> None:
    failure = parse_transaction_error(err)
    assert (failure.instruction_index, failure.error, failure.custom_code) == (0, "MissingRequiredSignature", None)
    assert TABLE.name(failure) == "MissingRequiredSignature"


def test_transaction_level_errors() -> None:
    assert parse_transaction_error(TransactionErrorFieldless.BlockhashNotFound) == TransactionFailure(
        "BlockhashNotFound")
    assert parse_transaction_error("AccountNotFound").kind == "AccountNotFound"
    assert parse_transaction_error({"InsufficientFundsForRent": {"account_index": 1}}).kind == (
        "InsufficientFundsForRent")
    assert parse_transaction_error(TransactionErrorInsufficientFundsForRent(1)).kind == "InsufficientFundsForRent"


def test_unknown_custom_code_and_table_validation() -> None:
    assert TABLE.name(TransactionFailure("InstructionError", 0, "Custom", 77)) == "Custom(77)"
    assert TABLE.code("NotRegistered") == 1
    with pytest.raises(ValueError, match="duplicate error names"):
        ProgramErrors("bad", {1: "Same", 2: "Same"})
    with pytest.raises(ValueError, match="out of range"):
        ProgramErrors("bad", {0: "Zero"})
    with pytest.raises(ValueError, match="unrecognised"):
        parse_transaction_error(3.5)
