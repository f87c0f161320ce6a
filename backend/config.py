"""The backend's configuration: one model for every role, from a TOML file with environment overrides.

    gridtokenx backend run --config /etc/gridtokenx/backend.toml

Precedence, highest first: command-line options, environment variables ``GRIDTOKENX_BACKEND_<KEY>``
(nested keys joined by ``__``, e.g. ``GRIDTOKENX_BACKEND_DATABASE__URL``,
``GRIDTOKENX_BACKEND_ROLES=ingest,minter``), the TOML file, the defaults below. Unknown keys are refused;
every error is reported at once, naming the key. Secrets are never in the TOML: passwords and keypairs are
read from files (``*_file`` keys) that should be mode 0600. systemd/backend.example.toml is a commented
example; docs/backend.md describes every key.
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from backend.api.settings import ApiSettings
from backend.ingest.receiver import BackendMqttSettings, IngestSettings

__all__ = [
    "ROLES",
    "ApiSettings",
    "BackendConfig",
    "ChainSettings",
    "ConfigError",
    "CrankSettings",
    "DatabaseSettings",
    "IndexerSettings",
    "MinterSettings",
    "RedisSettings",
    "Role",
    "load_config",
    "read_secret",
]

Role = Literal["ingest", "minter", "indexer", "cranks", "api"]
ROLES: tuple[Role, ...] = ("ingest", "minter", "indexer", "cranks", "api")
ENV_PREFIX = "GRIDTOKENX_BACKEND_"


class ConfigError(Exception):
    """The configuration is unusable; the message names every offending key."""


def read_secret(path: Path, what: str) -> str:
    """The contents of a secret file, stripped; refuses files others may read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{what} file {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    return text


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    # postgresql://user@host/db or sqlite:///path; default: sqlite under the data directory.
    url: str | None = None
    # The PostgreSQL password, kept out of the URL and the TOML.
    password_file: Path | None = None


class ChainSettings(_Section):
    # "embedded": LiteSVM in this process, state kept under <data_dir>/chain; or an http(s):// JSON-RPC URL.
    url: str = "embedded"
    # With a URL: the file `gridtokenx programs deploy` wrote (program ids, mints). Embedded: kept in data_dir.
    deployment_file: Path | None = None
    # The backend's key: pays the fees of settlements and cranks (it signs nothing the programs trust).
    # Embedded default: <data_dir>/chain/relayer.json, created on first start.
    keypair_file: Path | None = None
    # The registry authority (meter status) — only `gridtokenx backend meters activate` needs it.
    authority_keypair_file: Path | None = None
    commitment: Literal["processed", "confirmed", "finalized"] = "confirmed"
    # Embedded only: also serve the chain over JSON-RPC on host:port (wallets, the demo, other processes'
    # `--chain URL`), e.g. "127.0.0.1:8899".
    listen: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]+:\d+$")
    poll_interval_s: float = Field(default=0.4, gt=0, le=10)
    timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _chain_url(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("http://", "https://")):
            raise ValueError("must be 'embedded' or an http(s):// JSON-RPC URL")
        return value

    @property
    def embedded(self) -> bool:
        return self.url == "embedded"


class MinterSettings(_Section):
    interval_s: float = Field(default=5.0, gt=0)
    # A refused reading is retried after retry_first_s, doubling up to retry_max_s, at most max_attempts times.
    max_attempts: int = Field(default=8, ge=1)
    retry_first_s: float = Field(default=5.0, gt=0)
    retry_max_s: float = Field(default=600.0, gt=0)
    # A worker holds a meter this long at most; after a crash another worker may take the meter over.
    lease_s: float = Field(default=300.0, gt=0)
    # Settlement transactions in flight at once (each carries as many meters as fit).
    concurrency: int = Field(default=4, ge=1, le=64)
    # Meters per transaction: 0 = as many as fit in one transaction.
    meters_per_transaction: int = Field(default=0, ge=0, le=16)
    # Readings delivered out of order (below a settlement made meanwhile) are looked for this often, among
    # the late_window sequence numbers below each meter's last settlement, and MINTED by that settlement.
    sweep_interval_s: float = Field(default=30.0, gt=0)
    late_window: int = Field(default=5_000, ge=1)


class IndexerSettings(_Section):
    interval_s: float = Field(default=1.0, gt=0)
    # Over RPC, only transactions at this commitment are indexed: "finalized" cannot be rolled back by a fork.
    commitment: Literal["confirmed", "finalized"] = "finalized"
    # Signatures asked for per getSignaturesForAddress call (RPC) / journal entries per read (embedded).
    page_size: int = Field(default=500, ge=1, le=1000)


class CrankSettings(_Section):
    interval_s: float = Field(default=10.0, gt=0)
    batch: int = Field(default=20, ge=1, le=200)


class RedisSettings(_Section):
    # redis://host:port/db; unset: the live feed fans out inside this process only.
    url: str | None = None
    password_file: Path | None = None
    # Channel and key prefix: several deployments (or tests) can share one Redis server.
    channel_prefix: str = Field(default="gridtokenx", pattern=r"^[A-Za-z0-9_.:-]+$")


def _split_roles(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class BackendConfig(BaseSettings):
    """Everything ``gridtokenx backend`` needs. Build it with :func:`load_config`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid",
                                      case_sensitive=False)

    # A comma-separated list in the environment (GRIDTOKENX_BACKEND_ROLES=ingest,minter).
    roles: Annotated[list[Role], NoDecode] = ["ingest"]
    data_dir: Path = Path("/var/lib/gridtokenx")
    # Names this process in leases and logs; two processes must not share one.
    instance: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    database: DatabaseSettings = DatabaseSettings()
    mqtt: BackendMqttSettings = BackendMqttSettings()
    ingest: IngestSettings = IngestSettings()
    chain: ChainSettings = ChainSettings()
    minter: MinterSettings = MinterSettings()
    indexer: IndexerSettings = IndexerSettings()
    cranks: CrankSettings = CrankSettings()
    redis: RedisSettings = RedisSettings()
    api: ApiSettings = ApiSettings()

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, value: Any) -> Any:
        return _split_roles(value)

    @model_validator(mode="after")
    def _consistent(self) -> BackendConfig:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"roles: {self.roles} names a role twice")
        if not self.chain.embedded and self.chain.deployment_file is None:
            raise ValueError("chain.deployment_file is required with a chain URL (write it with "
                             "`gridtokenx programs deploy --url URL --keypair FILE`)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, InitSettingsSource(settings_cls, _TOML_DATA.get())

    # -- derived ---------------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        """The URL to connect with, the password from ``password_file`` put in (never logged)."""
        url = self.database.url or f"sqlite:///{self.data_dir / 'backend.db'}"
        if self.database.password_file is None:
            return url
        password = read_secret(self.database.password_file, "database password")
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ConfigError("database.password_file applies to postgresql:// URLs only")
        user, _, host = parts.netloc.rpartition("@")
        user = user.split(":", 1)[0] or "postgres"
        return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))

    @property
    def chain_dir(self) -> Path:
        return self.data_dir / "chain"

    @property
    def redis_url(self) -> str | None:
        if self.redis.url is None or self.redis.password_file is None:
            return self.redis.url
        password = read_secret(self.redis.password_file, "Redis password")
        parts = urlsplit(self.redis.url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f":{quote(password, safe='')}@{host}"))


class _TomlData:
    """The TOML file's contents for the settings source being built (one load at a time)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        return self._data

    def set(self, data: dict[str, Any]) -> None:
        self._data = data


_TOML_DATA = _TomlData()


def load_config(path: Path | None = None, **overrides: Any) -> BackendConfig:
    """Read ``path`` (TOML; optional), apply the environment, then ``overrides`` (nested dicts for
    sections, e.g. ``database={"url": ...}``). Raises :class:`ConfigError` naming every bad key."""
    data: dict[str, Any] = {}
    where = str(path) if path is not None else "configuration"
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    _TOML_DATA.set(data)
    try:
        return BackendConfig(**overrides)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'configuration'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{where}: {errors}") from None
    except SettingsError as exc:
        raise ConfigError(f"{where}: environment {ENV_PREFIX}…: {exc}") from None
    finally:
        _TOML_DATA.set({})
