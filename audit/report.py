"""The audit's verdict: each discrepancy with the transaction and account concerned, and the figures."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AuditError", "Discrepancy", "Report"]


class AuditError(Exception):
    """The audit could not run (the chain unreadable, not our deployment): no verdict."""


@dataclass(frozen=True)
class Discrepancy:
    check: str  # settlement, signature, grid-supply, meter-state, meter-account, certificate, escrow, thbc-supply, d7,
    #             readings, events, deployment
    message: str
    signature: str | None = None  # the transaction concerned
    account: str | None = None  # the account concerned

    def line(self) -> str:
        where = "".join(f"  {k}={v}" for k, v in (("tx", self.signature), ("account", self.account)) if v)
        return f"[{self.check}] {self.message}{where}"


@dataclass
class Report:
    source: str
    discrepancies: list[Discrepancy] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # checks that could not run, and why

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def add(self, check: str, message: str, *, signature: str | None = None, account: Any = None) -> None:
        self.discrepancies.append(Discrepancy(check, message, signature, None if account is None else str(account)))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "source": self.source, "figures": self.figures, "skipped": self.skipped,
                "discrepancies": [asdict(d) for d in self.discrepancies]}

    def text(self) -> str:
        f = self.figures
        lines = [f"verify: {self.source}",
                 f"  settlements {f.get('settlements', 0)} over {f.get('meters', 0)} meters "
                 f"({f.get('baselines', 0)} baselines), every reading's Ed25519 signature re-verified",
                 f"  GRID minted {_kwh(f.get('grid_minted', 0))} = Σ surplus of settled readings "
                 f"{_kwh(f.get('grid_recomputed', 0))}; supply {_kwh(f.get('grid_supply', 0))} "
                 f"+ consumed {_kwh(f.get('grid_consumed', 0))}",
                 f"  meter accounts {f.get('meter_accounts', 0)}, certificates {f.get('certificates', 0)} "
                 f"({f.get('certified_wh', 0) / 1000:,.3f} kWh certified), "
                 f"open orders {f.get('open_orders', 0)} (escrow {_kwh(f.get('escrow', 0))})",
                 f"  THBC supply {_thbc(f.get('thbc_supply', 0))} = issued {_thbc(f.get('thbc_issued', 0))} "
                 f"- redeemed {_thbc(f.get('thbc_redeemed', 0))}"]
        if "readings_checked" in f:
            lines.append(f"  settled readings found byte for byte in the backend's database: "
                         f"{f['readings_checked'] - f.get('readings_missing', 0)}/{f['readings_checked']}")
        lines += [f"  not checked: {s}" for s in self.skipped]
        lines += [f"DISCREPANCY {d.line()}" for d in self.discrepancies]
        lines.append("verify: OK — every GRID token is accounted for by meter-signed readings" if self.ok else
                     f"verify: FAILED — {len(self.discrepancies)} discrepancies")
        return "\n".join(lines)


def _kwh(base_units: int) -> str:
    return f"{base_units / 10**9:,.6f} GRID"


def _thbc(base_units: int) -> str:
    return f"{base_units / 10**6:,.6f}"
