"""Which top-level instruction and which program emitted each ``Program data:`` line of a transaction.

A transaction's logs nest: ``Program <id> invoke [n]`` opens depth n, ``Program <id> success`` /
``... failed`` closes it, and ``Program data: <base64> …`` (``sol_log_data``) belongs to the program at
the top of that stack. Only programs can write those structural lines (``sol_log`` output is prefixed
``Program log:``), so an event's emitter cannot be forged by another program's logs: the indexer accepts
an event only if OUR program is the one on top of the stack when it was logged.

Precompiles (Ed25519, secp256k1, secp256r1) run without any log lines, so depth-1 invokes are matched to
the message's top-level instructions skipping precompile instructions; the event's ``instruction index``
is its index in the message, as the transaction error reports it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from solders.pubkey import Pubkey

__all__ = ["PRECOMPILES", "LogError", "LoggedEvent", "events_in_logs"]

PRECOMPILES = frozenset(Pubkey.from_string(k) for k in (
    "Ed25519SigVerify111111111111111111111111111",
    "KeccakSecp256k11111111111111111111111111111",
    "Secp256r1SigVerify1111111111111111111111111",
))
_INVOKE = re.compile(r"^Program (\w+) invoke \[(\d+)\]$")
_END = re.compile(r"^Program (\w+) (success|failed.*)$")
_DATA = "Program data: "


class LogError(ValueError):
    """The logs do not follow the runtime's structure (or were truncated): events cannot be attributed."""


@dataclass(frozen=True)
class LoggedEvent:
    ix_index: int  # top-level instruction (index in the message)
    event_index: int  # order of this event among the events of that instruction
    program: Pubkey  # the program that emitted it
    fields: tuple[bytes, ...]  # sol_log_data fields


def events_in_logs(logs: Sequence[str], top_level_programs: Sequence[Pubkey]) -> list[LoggedEvent]:
    """Every ``sol_log_data`` event with its top-level instruction index and emitting program."""
    # The message's instruction indexes that produce logs, in order.
    logged = [i for i, program in enumerate(top_level_programs) if program not in PRECOMPILES]
    next_top = 0
    stack: list[Pubkey] = []
    current = -1
    per_instruction: dict[int, int] = {}
    out: list[LoggedEvent] = []
    for line in logs:
        if line.startswith("Log truncated"):
            raise LogError("the logs were truncated: events after this point are unknown")
        m = _INVOKE.match(line)
        if m:
            program, depth = Pubkey.from_string(m.group(1)), int(m.group(2))
            if depth != len(stack) + 1:
                raise LogError(f"invoke at depth {depth} inside depth {len(stack)}: {line!r}")
            if depth == 1:
                if next_top >= len(logged):
                    raise LogError(f"more top-level invokes than instructions: {line!r}")
                current = logged[next_top]
                next_top += 1
                if top_level_programs[current] != program:
                    raise LogError(f"instruction {current} calls {top_level_programs[current]}, the logs say "
                                   f"{program}")
            stack.append(program)
            continue
        m = _END.match(line)
        if m and stack and str(stack[-1]) == m.group(1):
            stack.pop()
            continue
        if line.startswith(_DATA):
            if not stack:
                raise LogError(f"event outside any program: {line!r}")
            try:
                fields = tuple(base64.b64decode(f, validate=True) for f in line[len(_DATA):].split())
            except (binascii.Error, ValueError) as exc:
                raise LogError(f"malformed event {line!r}: {exc}") from None
            index = per_instruction.get(current, 0)
            per_instruction[current] = index + 1
            out.append(LoggedEvent(current, index, stack[-1], fields))
    return out
