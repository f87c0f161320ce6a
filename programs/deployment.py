"""A whole GridTokenX deployment on one chain: program ids, mints, market — as a value and as a file.

``deploy_all`` puts registry, energy token, trading and certificates on a chain through the BPF Upgradeable
Loader (``deploy_upgradeable``; on LiteSVM ``direct=True`` loads them with
``add_program_with_authority`` instead, the state such a deploy leaves, without the write transactions),
then initialises them: registry + energy token + GRID mint (programs.energy_token.bootstrap), the payments
program with a THBC mint whose authority is its PDA and ``payment_operator`` as the operator who issues
THBC against deposit references (programs.payments.client.bootstrap), the fee account, the market and
the certificates config. ``admin`` is every program's upgrade authority, the registry authority (meter
status), certificates governance, market authority and payments config authority.

``gridtokenx programs deploy --url URL --keypair FILE`` runs it over JSON-RPC and writes the
:class:`Deployment` as JSON; ``gridtokenx backend`` reads that file to find everything (``[chain]
deployment_file``). Keypair files use the Solana CLI format (a JSON array of 64 numbers), mode 0600.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.certificates import client as certificates
from programs.client.artifacts import program_so
from programs.client.chain import Chain, LiteSVMChain
from programs.client.deploy import add_program_with_authority, deploy_upgradeable
from programs.energy_token.bootstrap import GridDeployment, bootstrap
from programs.payments import client as payments
from programs.trading import client as trading
from programs.trading.sandbox import create_token_account

__all__ = [
    "DEPLOYMENT_VERSION",
    "PROGRAM_NAMES",
    "Deployment",
    "DeploymentError",
    "deploy_all",
    "load_keypair",
    "save_keypair",
]

DEPLOYMENT_VERSION = 2  # 2: the payments program and its operator
PROGRAM_NAMES = ("registry", "energy_token", "trading", "certificates", "payments")
DEFAULT_FEE_BPS = 25


class DeploymentError(Exception):
    """A deployment file or keypair file is missing or malformed; the message names it."""


def load_keypair(path: Path) -> Keypair:
    """A Solana CLI keypair file (JSON array of 64 numbers)."""
    try:
        return Keypair.from_json(path.read_text())
    except OSError as exc:
        raise DeploymentError(f"cannot read keypair file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise DeploymentError(f"{path} is not a Solana keypair file (a JSON array of 64 numbers): {exc}") from None


def save_keypair(path: Path, keypair: Keypair) -> None:
    """Write ``keypair`` as a Solana CLI keypair file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(keypair.to_json())
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class Deployment:
    """Where everything is. ``programs`` maps each program's name to its id."""

    programs: dict[str, Pubkey]
    grid_mint: Pubkey
    thbc_mint: Pubkey
    admin: Pubkey
    payment_operator: Pubkey  # issues THBC against deposit references (THBC's mint authority is the payments PDA)
    fee_account: Pubkey
    fee_bps: int
    cluster: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def registry(self) -> Pubkey:
        return self.programs["registry"]

    @property
    def energy_token(self) -> Pubkey:
        return self.programs["energy_token"]

    @property
    def trading(self) -> Pubkey:
        return self.programs["trading"]

    @property
    def certificates(self) -> Pubkey:
        return self.programs["certificates"]

    @property
    def payments(self) -> Pubkey:
        return self.programs["payments"]

    @property
    def thbc_authority(self) -> Pubkey:
        """THBC's mint authority: the payments program's PDA."""
        from programs.payments import client as payments

        return payments.authority_address(self.payments)[0]

    def by_name(self) -> dict[str, Pubkey]:
        """{program name: id}, as programs.events.decode_transaction_events takes it."""
        return dict(self.programs)

    @property
    def grid(self) -> GridDeployment:
        from programs.energy_token import client as energy

        return GridDeployment(self.registry, self.energy_token, self.grid_mint,
                              energy.authority_address(self.energy_token)[0], self.admin)

    @property
    def market(self) -> Pubkey:
        return trading.market_address(self.trading)[0]

    def program_name(self, program_id: Pubkey) -> str | None:
        for name, pid in self.programs.items():
            if pid == program_id:
                return name
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": DEPLOYMENT_VERSION,
            "cluster": self.cluster,
            "created_at": self.created_at,
            "programs": {name: str(pid) for name, pid in self.programs.items()},
            "grid_mint": str(self.grid_mint),
            "thbc_mint": str(self.thbc_mint),
            "admin": str(self.admin),
            "payment_operator": str(self.payment_operator),
            "fee_account": str(self.fee_account),
            "fee_bps": self.fee_bps,
            # Derived, for people reading the file: the market and the GRID mint authority.
            "market": str(self.market),
            "grid_mint_authority": str(self.grid.authority),
            "thbc_mint_authority": str(self.thbc_authority),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "deployment") -> Deployment:
        try:
            if data.get("version") != DEPLOYMENT_VERSION:
                raise ValueError(f"version {data.get('version')!r}, this software reads {DEPLOYMENT_VERSION}")
            programs = {str(name): Pubkey.from_string(pid) for name, pid in data["programs"].items()}
            missing = [name for name in PROGRAM_NAMES if name not in programs]
            if missing:
                raise ValueError(f"no program id for {', '.join(missing)}")
            return cls(programs, Pubkey.from_string(data["grid_mint"]), Pubkey.from_string(data["thbc_mint"]),
                       Pubkey.from_string(data["admin"]), Pubkey.from_string(data["payment_operator"]),
                       Pubkey.from_string(data["fee_account"]), int(data["fee_bps"]), data.get("cluster"),
                       int(data.get("created_at", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DeploymentError(f"{where} is not a GridTokenX deployment file: {exc}") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise DeploymentError(f"cannot read deployment file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise DeploymentError(f"deployment file {path} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise DeploymentError(f"deployment file {path} is not a JSON object")
        return cls.from_json(data, str(path))


async def deploy_all(chain: Chain, admin: Keypair, *, payment_operator: Pubkey, fee_bps: int = DEFAULT_FEE_BPS,
                     program_keypairs: dict[str, Keypair] | None = None, direct: bool = False,
                     cluster: str | None = None) -> Deployment:
    """Deploy and initialise every program with ``admin`` as authority (it pays: fund it first).
    ``direct``: LiteSVM only, load the programs without the loader's write transactions."""
    keys = {name: (program_keypairs or {}).get(name) or Keypair() for name in PROGRAM_NAMES}
    for name in PROGRAM_NAMES:
        if direct:
            if not isinstance(chain, LiteSVMChain):
                raise TypeError("direct=True loads programs into LiteSVM; use the loader on other chains")
            add_program_with_authority(chain, keys[name].pubkey(), program_so(name), admin.pubkey())
        else:
            await deploy_upgradeable(chain, program_so(name), keys[name], admin)
    ids = {name: k.pubkey() for name, k in keys.items()}
    grid = await bootstrap(chain, admin, ids["registry"], ids["energy_token"])
    thbc_mint = (await payments.bootstrap(chain, admin, ids["payments"], payment_operator)).mint
    fee_account = await create_token_account(chain, admin, thbc_mint, admin.pubkey())
    market = trading.initialize_market(ids["trading"], admin.pubkey(), grid.mint, thbc_mint, fee_account, fee_bps)
    certs = certificates.initialize(ids["certificates"], admin.pubkey(), admin.pubkey(), ids["registry"])
    (await chain.send_transaction([market, certs], [admin])).raise_for_failure()
    return Deployment(ids, grid.mint, thbc_mint, admin.pubkey(), payment_operator, fee_account, fee_bps, cluster)
