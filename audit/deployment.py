"""Which programs to audit: their ids, from a deployment file or given one by one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from solders.pubkey import Pubkey

__all__ = ["Programs"]


@dataclass(frozen=True)
class Programs:
    """The deployment's program ids. Only the energy token is required: the registry and GRID mint are read
    from its config on chain; without trading / certificates / payments those checks are skipped (and said)."""

    energy_token: Pubkey
    registry: Pubkey | None = None
    trading: Pubkey | None = None
    certificates: Pubkey | None = None
    payments: Pubkey | None = None

    NAMES = ("registry", "energy_token", "trading", "certificates", "payments")

    @classmethod
    def from_mapping(cls, ids: dict[str, str]) -> Programs:
        unknown = set(ids) - set(cls.NAMES)
        if unknown:
            raise ValueError(f"unknown program names {sorted(unknown)}; known: {', '.join(cls.NAMES)}")
        if "energy_token" not in ids:
            raise ValueError("the energy_token program id is required")
        return cls(**{name: Pubkey.from_string(value) for name, value in ids.items()})

    @classmethod
    def load(cls, path: Path) -> Programs:
        """A deployment file (`gridtokenx programs deploy` / the embedded chain's deployment.json): its
        ``programs`` object maps names to base58 ids; other keys are ignored (the audit reads mints from
        the chain)."""
        try:
            data = json.loads(path.read_text())
            ids = {k: v for k, v in data["programs"].items() if k in cls.NAMES}
            return cls.from_mapping(ids)
        except OSError as exc:
            raise ValueError(f"cannot read deployment file {path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path} is not a deployment file with a programs object: {exc}") from None

    def by_id(self) -> dict[Pubkey, str]:
        return {pid: name for name in self.NAMES if (pid := getattr(self, name)) is not None}
