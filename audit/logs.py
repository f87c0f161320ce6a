"""Events in a transaction's log messages, attributed to the program that logged them.

docs/programs.md ("Events", "Decoding"): an event is one ``Program data: <base64>`` line; it belongs to
the program on top of the invoke stack the runtime writes (``Program <id> invoke [n]`` … ``Program <id>
success`` / ``failed``), so the registry's SettlementRecorded logged inside the energy token's CPI is the
registry's, and bytes logged by any other program are not ours. Top-level instruction indexes come from
the message (the Ed25519 precompile logs nothing). A log ending in ``Log truncated`` lost its later events.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from solders.pubkey import Pubkey

from audit.formats import Event, FormatError, decode_event

_INVOKE = re.compile(r"^Program (\w+) invoke \[(\d+)\]$")
_DONE = re.compile(r"^Program (\w+) (?:success|failed.*)$")
_DATA = "Program data: "


@dataclass(frozen=True)
class LoggedEvent:
    instruction: int  # top-level instruction index in the message (-1: not attributable)
    depth: int  # 1: the top-level program itself, 2+: called by CPI
    event: Event


@dataclass(frozen=True)
class LogEvents:
    events: list[LoggedEvent]
    truncated: bool
    errors: list[str]  # bytes our programs logged that are no documented event


def events_from_logs(logs: Sequence[str], programs: Mapping[Pubkey, str],
                     instruction_programs: Sequence[Pubkey]) -> LogEvents:
    """Our programs' events (``programs``: id -> name) in order, each with its top-level instruction."""
    stack: list[Pubkey] = []
    events: list[LoggedEvent] = []
    errors: list[str] = []
    instruction, truncated = -1, False
    for line in logs:
        if (m := _INVOKE.match(line)) is not None:
            program, depth = Pubkey.from_string(m.group(1)), int(m.group(2))
            del stack[depth - 1:]
            stack.append(program)
            if depth == 1:
                instruction = next((i for i in range(instruction + 1, len(instruction_programs))
                                    if instruction_programs[i] == program), -1)
        elif _DONE.match(line) is not None:
            if stack:
                stack.pop()
        elif line == "Log truncated":
            truncated = True
        elif line.startswith(_DATA) and stack and stack[-1] in programs:
            name = programs[stack[-1]]
            fields = line[len(_DATA):].split()
            try:
                if len(fields) != 1:
                    raise FormatError("event", f"{name}: an event is one field, got {len(fields)}")
                data = base64.b64decode(fields[0], validate=True)
                events.append(LoggedEvent(instruction, len(stack), decode_event(name, data)))
            except (FormatError, binascii.Error) as exc:
                errors.append(str(exc))
    return LogEvents(events, truncated, errors)
