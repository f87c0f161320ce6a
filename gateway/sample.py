"""The value that crosses from polling to signing: one meter's decoded state at one instant.

The poller produces a ``MeterSample`` per successful poll; the signer turns it into a
:class:`gridtokenx.reading.Reading` by giving it the meter's next sequence number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gridtokenx.reading import ClockSource, Reading


@dataclass(frozen=True, slots=True)
class MeterSample:
    meter_id: str
    timestamp_ms: int
    import_wh: int
    export_wh: int
    power_w: int | None
    clock: ClockSource = ClockSource.UNSYNCED
    # Set when the values are implausible (counter went backwards, meter reports an error): the
    # reading is still signed and delivered so nothing is hidden, but never minted from.
    meter_error: bool = False
    problems: tuple[str, ...] = ()
    # Every decoded measurement by its vocabulary name (see gateway.measurements), for status pages.
    values: Mapping[str, float] = field(default_factory=dict)
    # False when only the signed fields were read at this poll: ``values`` then holds them fresh and the
    # other measurements from the last poll that read everything (see MeterSpec.values_interval).
    complete: bool = True

    def to_reading(self, seq: int) -> Reading:
        return Reading(
            meter_id=self.meter_id,
            seq=seq,
            timestamp_ms=self.timestamp_ms,
            import_wh=self.import_wh,
            export_wh=self.export_wh,
            power_w=self.power_w,
            clock=self.clock,
            meter_error=self.meter_error,
        )
