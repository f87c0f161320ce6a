"""Transaction errors as plain values, and each program's custom error numbers as names.

LiteSVM and the JSON-RPC client both hand back solders ``TransactionError`` objects; JSON-RPC responses
decoded elsewhere arrive as JSON (``{"InstructionError": [0, {"Custom": 3}]}``). :func:`parse_transaction_error`
turns either into a :class:`TransactionFailure`, and a program's :class:`ProgramErrors` table (mirroring
its C ``error.h``) names a ``Custom(n)`` failure. Built-in program errors (``n << 32`` in C) already arrive
by name, e.g. ``MissingRequiredSignature``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from solders.transaction_status import (
    InstructionErrorBorshIO,
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
)

__all__ = ["CUSTOM", "ProgramErrors", "TransactionFailure", "parse_transaction_error"]

CUSTOM = "Custom"


@dataclass(frozen=True)
class TransactionFailure:
    """Why a transaction failed.

    ``kind`` is the transaction-level error (``InstructionError``, ``BlockhashNotFound``, ...). For an
    instruction error, ``instruction_index`` is the failing top-level instruction and ``error`` the
    instruction error name (``Custom`` or a built-in such as ``InvalidSeeds``); ``custom_code`` is set
    for ``Custom``. A custom code raised inside a CPI is reported against the top-level instruction, so
    the logs say which program raised it.
    """

    kind: str
    instruction_index: int | None = None
    error: str | None = None
    custom_code: int | None = None

    def __str__(self) -> str:
        if self.instruction_index is None:
            return self.kind
        detail = f"Custom({self.custom_code})" if self.error == CUSTOM else self.error
        return f"instruction {self.instruction_index}: {detail}"


def _enum_name(value: object) -> str:
    return str(value).rsplit(".", 1)[-1]


def _parse_instruction_error(index: int, err: Any) -> TransactionFailure:
    if isinstance(err, InstructionErrorCustom):
        return TransactionFailure("InstructionError", index, CUSTOM, err.code)
    if isinstance(err, InstructionErrorFieldless):
        return TransactionFailure("InstructionError", index, _enum_name(err))
    if isinstance(err, InstructionErrorBorshIO):
        return TransactionFailure("InstructionError", index, "BorshIoError")
    if isinstance(err, Mapping) and CUSTOM in err:
        return TransactionFailure("InstructionError", index, CUSTOM, int(err[CUSTOM]))
    if isinstance(err, Mapping) and len(err) == 1:
        return TransactionFailure("InstructionError", index, next(iter(err)))
    if isinstance(err, str):
        return TransactionFailure("InstructionError", index, err)
    raise ValueError(f"unrecognised instruction error {err!r}")


def parse_transaction_error(err: Any) -> TransactionFailure:
    """Normalise a solders TransactionError, its JSON text, or decoded RPC JSON."""
    if isinstance(err, TransactionErrorInstructionError):
        return _parse_instruction_error(err.index, err.err)
    if isinstance(err, TransactionErrorFieldless):
        return TransactionFailure(_enum_name(err))
    if isinstance(err, str) and err.lstrip().startswith(("{", "[", '"')):
        return parse_transaction_error(json.loads(err))
    if isinstance(err, str):
        return TransactionFailure(err)
    if isinstance(err, Mapping) and len(err) == 1:
        kind, value = next(iter(err.items()))
        if kind == "InstructionError":
            index, inner = value
            return _parse_instruction_error(int(index), inner)
        return TransactionFailure(str(kind))
    if hasattr(err, "to_json"):
        # Other variants with fields (DuplicateInstruction, InsufficientFundsForRent, ...): name them.
        return TransactionFailure(type(err).__name__.removeprefix("TransactionError"))
    raise ValueError(f"unrecognised transaction error {err!r}")


class ProgramErrors:
    """A program's custom error numbers → names (the mirror of its C ``error.h``)."""

    def __init__(self, program: str, codes: Mapping[int, str]) -> None:
        names = list(codes.values())
        if len(set(names)) != len(names):
            raise ValueError(f"{program}: duplicate error names in {dict(codes)}")
        for code in codes:
            if not 0 < code < 2**32:
                raise ValueError(f"{program}: custom error {code} out of range 1..2^32-1")
        self.program = program
        self.codes = dict(codes)
        self.by_name = {name: code for code, name in codes.items()}

    def name(self, failure: TransactionFailure) -> str:
        """``failure`` by name: this program's name for a custom code, else the built-in name."""
        if failure.error == CUSTOM:
            assert failure.custom_code is not None
            return self.codes.get(failure.custom_code, f"Custom({failure.custom_code})")
        return failure.error or failure.kind

    def code(self, name: str) -> int:
        return self.by_name[name]
