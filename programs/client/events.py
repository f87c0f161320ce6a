"""Events of the GridTokenX programs: the common header, typed decoders, and attribution from logs.

Every state change of every program logs one event with ``sol_log_data``, a single field that a cluster
shows as ``Program data: <base64>`` (docs/programs.md, "Events"). Layout:

    [0..8]  tag      sha256("gridtokenx:event:" + name)[0..8]   (programs/include/gtx/events.h)
    [8]     version  the event's layout version
    [9..]   fields   fixed layout, little endian; public keys 32 bytes, meter ids 16 bytes NUL padded

A program client declares each event as a frozen dataclass whose fields are annotated with the wire types
below, decorated with :func:`event`, and collects them in a :class:`ProgramEvents` catalogue.

Attribution: anyone's program can log bytes that look like our events, so an event counts only if the
program that logged it is one of ours. :func:`decode_log_events` follows the invoke stack in the log
messages ("Program <id> invoke [n]" ... "success" / "failed") and attributes each "Program data:" line to
the program on top of it — the energy token's events to the energy token, the registry's events logged
inside its CPI to the registry. Top-level instruction indexes come from the transaction's message
(``instruction_programs``): precompile instructions (Ed25519) log nothing, so counting "invoke [1]" lines
alone would be off by one after them. Only a successful transaction's events happened.

A cluster keeps at most 10,000 bytes of a transaction's logs and then writes "Log truncated": events after
that point are lost from the logs. :class:`TransactionEvents` says so (``truncated``), and
:meth:`TransactionEvents.complete` raises :class:`EventsTruncated`, so that an indexer never takes a
partial list for the whole.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
import struct
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from solders.pubkey import Pubkey

__all__ = [
    "EVENT_HEADER_LEN",
    "EVENT_TAG_PREFIX",
    "I64",
    "U8",
    "U16",
    "U64",
    "Bytes32",
    "EventDecodeError",
    "EventLayout",
    "EventsTruncated",
    "Key",
    "LoggedEvent",
    "MeterId",
    "ProgramEvents",
    "TransactionEvents",
    "decode_log_events",
    "event",
    "event_tag",
]

EVENT_TAG_PREFIX = b"gridtokenx:event:"
EVENT_TAG_LEN = 8
EVENT_HEADER_LEN = EVENT_TAG_LEN + 1

# Wire types: the struct code (or a width) in the annotation.
U8 = Annotated[int, "B"]
U16 = Annotated[int, "H"]
U64 = Annotated[int, "Q"]
I64 = Annotated[int, "q"]
Key = Annotated[Pubkey, "32s"]
MeterId = Annotated[str, "16s"]  # NUL padded ASCII, as in the reading
Bytes32 = Annotated[bytes, "32s|raw"]  # 32 bytes as they are (a reference, a hash)

_PROGRAM_DATA = "Program data: "
_INVOKE = re.compile(r"^Program (\w+) invoke \[(\d+)\]$")
_DONE = re.compile(r"^Program (\w+) (?:success|failed.*)$")
_TRUNCATED = "Log truncated"


class EventDecodeError(ValueError):
    """Bytes attributed to one of our programs that are no event of its catalogue."""


class EventsTruncated(EventDecodeError):
    """The transaction's logs were cut off: some of its events are missing from them."""


def event_tag(name: str) -> bytes:
    """The 8-byte tag of event ``name``: sha256("gridtokenx:event:<name>")[0..8]."""
    return hashlib.sha256(EVENT_TAG_PREFIX + name.encode("ascii")).digest()[:EVENT_TAG_LEN]


@dataclass(frozen=True)
class EventLayout:
    """How one event class sits in bytes: name, version, tag, and its fields in order."""

    name: str
    version: int
    tag: bytes
    fields: tuple[tuple[str, str], ...]  # (field name, wire type: a struct code, "32s|raw" for raw bytes)
    size: int

    @property
    def format(self) -> str:
        return "<" + "".join(_code(wire) for _, wire in self.fields)

    def offsets(self) -> list[tuple[str, int, int, str]]:
        """(name, start, end, wire type) of each field, after the 9-byte header."""
        out, at = [], EVENT_HEADER_LEN
        for name, wire in self.fields:
            width = struct.calcsize("<" + _code(wire))
            out.append((name, at, at + width, wire))
            at += width
        return out


def _code(wire: str) -> str:
    return wire.split("|", 1)[0]


E = TypeVar("E")


def event(name: str, version: int = 1) -> typing.Callable[[type[E]], type[E]]:
    """Class decorator: a frozen dataclass whose annotated fields (U8, U64, Key, ...) are the event's
    fields in wire order. Adds ``layout`` (an :class:`EventLayout`) to the class."""

    def wrap(cls: type[E]) -> type[E]:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            meta = getattr(hints[f.name], "__metadata__", ())
            if not meta:
                raise TypeError(f"event {name}: field {f.name} has no wire type")
            fields.append((f.name, str(meta[0])))
        size = EVENT_HEADER_LEN + struct.calcsize("<" + "".join(_code(wire) for _, wire in fields))
        cls.layout = EventLayout(name, version, event_tag(name), tuple(fields), size)  # type: ignore[attr-defined]
        return cls

    return wrap


def _layout(cls: type[Any]) -> EventLayout:
    layout: EventLayout = cls.layout
    return layout


def _convert(wire: str, value: Any) -> Any:
    if wire == "32s":
        return Pubkey.from_bytes(value)
    if wire == "16s":
        return bytes(value).rstrip(b"\0").decode("ascii")
    return value


class ProgramEvents:
    """The events one program emits: decode bytes attributed to it into typed dataclasses."""

    def __init__(self, program: str, classes: Iterable[type[Any]]) -> None:
        self.program = program
        self.classes = list(classes)
        self._by_tag: dict[bytes, type[Any]] = {}
        for cls in self.classes:
            tag = _layout(cls).tag
            if tag in self._by_tag:
                raise ValueError(f"{program}: two events with the tag of {_layout(cls).name}")
            self._by_tag[tag] = cls

    def layouts(self) -> list[EventLayout]:
        return [_layout(cls) for cls in self.classes]

    def decode(self, data: bytes) -> Any:
        """The typed event in ``data``; EventDecodeError if it is none of this program's, of another
        version, or of another length."""
        cls = self._by_tag.get(data[:EVENT_TAG_LEN])
        if cls is None:
            raise EventDecodeError(f"{self.program}: unknown event tag {data[:EVENT_TAG_LEN].hex()}")
        layout = _layout(cls)
        if len(data) < EVENT_HEADER_LEN or data[EVENT_TAG_LEN] != layout.version:
            raise EventDecodeError(f"{self.program}: {layout.name} version {data[EVENT_TAG_LEN:EVENT_HEADER_LEN].hex()}"
                                   f" is not {layout.version}")
        if len(data) != layout.size:
            raise EventDecodeError(f"{self.program}: {layout.name} is {len(data)} bytes, expected {layout.size}")
        values = struct.unpack_from(layout.format, data, EVENT_HEADER_LEN)
        return cls(*(_convert(wire, v) for (_, wire), v in zip(layout.fields, values, strict=True)))


@dataclass(frozen=True)
class LoggedEvent:
    """One of our events as a transaction logged it."""

    program: str  # catalogue name: "registry", "energy_token", ...
    program_id: Pubkey  # the program that logged it (top of the invoke stack)
    instruction_index: int  # the top-level instruction it happened in (-1: unknown)
    depth: int  # 1 = the top-level instruction's own program, 2 = called by CPI, ...
    index: int  # position among our events in the transaction
    event: Any


@dataclass(frozen=True)
class TransactionEvents:
    events: list[LoggedEvent]
    truncated: bool  # the logs end in "Log truncated": later events are missing

    def complete(self) -> list[LoggedEvent]:
        """The events, or EventsTruncated if the logs were cut off."""
        if self.truncated:
            raise EventsTruncated(f"logs truncated after {len(self.events)} events: the rest are missing")
        return self.events

    def of(self, cls: type[E]) -> list[E]:
        """The events of one class, in order."""
        return [e.event for e in self.events if isinstance(e.event, cls)]


def decode_log_events(logs: Sequence[str], programs: Mapping[Pubkey, ProgramEvents], *,
                      instruction_programs: Sequence[Pubkey] | None = None) -> TransactionEvents:
    """Our events in a transaction's log messages, attributed to the program that logged them.

    ``programs`` maps our program ids to their catalogues; "Program data:" lines of any other program are
    ignored. ``instruction_programs`` is the program id of each top-level instruction of the message
    (LiteSVMChain / RpcChain results carry it); without it instruction indexes count "invoke [1]" lines,
    which is wrong after a precompile instruction. Bytes logged by one of our programs that its catalogue
    cannot decode raise EventDecodeError (an indexer must stop, not skip).
    """
    stack: list[Pubkey] = []
    events: list[LoggedEvent] = []
    instruction, truncated = -1, False
    for line in logs:
        if (m := _INVOKE.match(line)) is not None:
            program_id, depth = Pubkey.from_string(m.group(1)), int(m.group(2))
            del stack[depth - 1:]
            stack.append(program_id)
            if depth == 1:
                instruction = _next_instruction(instruction, program_id, instruction_programs)
        elif _DONE.match(line) is not None:
            if stack:
                stack.pop()
        elif line == _TRUNCATED:
            truncated = True
        elif line.startswith(_PROGRAM_DATA) and stack:
            catalogue = programs.get(stack[-1])
            if catalogue is None:
                continue
            fields = line[len(_PROGRAM_DATA):].split()
            if len(fields) != 1:
                raise EventDecodeError(f"{catalogue.program}: an event is one field, got {len(fields)}")
            try:
                data = base64.b64decode(fields[0], validate=True)
            except binascii.Error as exc:
                raise EventDecodeError(f"{catalogue.program}: event is not base64: {exc}") from exc
            events.append(LoggedEvent(catalogue.program, stack[-1], instruction, len(stack), len(events),
                                      catalogue.decode(data)))
    return TransactionEvents(events, truncated)


def _next_instruction(current: int, program_id: Pubkey, instruction_programs: Sequence[Pubkey] | None) -> int:
    if instruction_programs is None:
        return current + 1
    for index in range(current + 1, len(instruction_programs)):
        if instruction_programs[index] == program_id:
            return index
    raise EventDecodeError(f"program {program_id} logged an instruction the message does not have")
