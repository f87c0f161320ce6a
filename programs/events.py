"""Every GridTokenX event in one transaction: the decoder an indexer uses (docs/programs.md "Events").

    from programs.events import decode_transaction_events
    found = decode_transaction_events(logs, {"registry": REGISTRY_ID, "energy_token": ENERGY_ID, ...},
                                      instruction_programs=[ix.program_id for ix in message_instructions])
    for e in found.complete():          # EventsTruncated if the cluster cut the logs off
        e.program, e.instruction_index, e.depth, e.index, e.event   # e.event: a typed dataclass

Each program's catalogue (``EVENTS``) and dataclasses live in its client; this module only puts them
together, keyed by the program ids of a deployment. Events are attributed to the program that logged them
(the invoke stack in the logs, programs.client.events), so the registry's SettlementRecorded logged inside
the energy token's CPI is the registry's, and bytes that mimic our events logged by any other program are
ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from solders.pubkey import Pubkey

from programs.certificates import client as certificates
from programs.client.chain import TxResult
from programs.client.events import LoggedEvent, ProgramEvents, TransactionEvents, decode_log_events
from programs.energy_token import client as energy_token
from programs.payments import client as payments
from programs.registry import client as registry
from programs.trading import client as trading

__all__ = ["CATALOGUES", "catalogues", "decode_result_events", "decode_transaction_events"]

# Program name (as in programs/<name>/) -> its events.
CATALOGUES: dict[str, ProgramEvents] = {
    "registry": registry.EVENTS,
    "energy_token": energy_token.EVENTS,
    "certificates": certificates.EVENTS,
    "trading": trading.EVENTS,
    "payments": payments.EVENTS,
}


def catalogues(program_ids: Mapping[str, Pubkey]) -> dict[Pubkey, ProgramEvents]:
    """{program id: catalogue} for a deployment given as {program name: program id}."""
    unknown = set(program_ids) - set(CATALOGUES)
    if unknown:
        raise KeyError(f"no event catalogue for {sorted(unknown)}; known: {sorted(CATALOGUES)}")
    return {program_id: CATALOGUES[name] for name, program_id in program_ids.items()}


def decode_transaction_events(logs: Sequence[str], program_ids: Mapping[str, Pubkey], *,
                              instruction_programs: Sequence[Pubkey] | None = None) -> TransactionEvents:
    """Our events in a successful transaction's log messages, attributed to their programs.
    ``instruction_programs``: the program id of each top-level instruction of the transaction's message
    (needed for correct instruction indexes when a precompile instruction precedes ours)."""
    return decode_log_events(logs, catalogues(program_ids), instruction_programs=instruction_programs)


def decode_result_events(result: TxResult, program_ids: Mapping[str, Pubkey]) -> list[LoggedEvent]:
    """Every event of ours in a transaction sent through a Chain (EventsTruncated if the logs were cut)."""
    return result.decode_events(catalogues(program_ids)).complete()
