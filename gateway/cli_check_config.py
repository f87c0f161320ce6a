"""``gridtokenx gateway check-config FILE``: is this configuration good, and what does it amount to?

Validates the file as the daemon would — TOML, credential files (``$CREDENTIALS_DIRECTORY``) and
``GRIDTOKENX_…`` environment overrides layered on it — without touching a meter, the broker or the
outbox. Prints the effective configuration, every default filled in and secrets masked, as TOML
(``--json`` for JSON); a value that came from the environment or a credential says so in a comment.
Files the daemon will need (device key, password and token files) are checked and, if missing or
too open, named on stderr as warnings: the file may be meant for another machine.

Exit status: 0 valid, 2 invalid (every problem listed on stderr with its key path).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_INVALID = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="gateway TOML file, e.g. /etc/gridtokenx/gateway.toml")
    parser.add_argument("--json", action="store_true", help="print the effective configuration as JSON")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def _table(lines: list[str], header: str, table: dict[str, Any], path: str, origins: dict[str, str]) -> None:
    lines.append(header)
    nested = []
    for key, value in table.items():
        where = f"{path}.{key}"
        if isinstance(value, dict):
            nested.append((key, value))
            continue
        if value is None:
            lines.append(f"# {key} = (not set)")
            continue
        note = f"  # from {origins[where]}" if where in origins else ""
        lines.append(f"{key} = {_toml_value(value)}{note}")
    for key, value in nested:
        lines.append("")
        _table(lines, f"[{header.strip('[]')}.{key}]", value, f"{path}.{key}", origins)


def as_toml(effective: dict[str, Any], origins: dict[str, str]) -> str:
    lines: list[str] = []
    for section, value in effective.items():
        if value is None:
            lines += [f"# [{section}] not configured", ""]
        elif isinstance(value, list):
            for i, entry in enumerate(value):
                _table(lines, f"[[{section}]]", entry, f"{section}.{i}", origins)
                lines.append("")
        else:
            _table(lines, f"[{section}]", value, section, origins)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _warnings(config: Any) -> list[str]:
    from gateway.keys import DeviceKeyError, load_key

    out = []
    try:
        load_key(config.key.path)
    except DeviceKeyError as exc:
        out.append(str(exc))
    files = [("mqtt.password_file", config.mqtt.password_file)]
    if config.mqtt.tls is not None:
        files += [(f"mqtt.tls.{k}", getattr(config.mqtt.tls, k)) for k in ("ca_file", "cert_file", "key_file")]
    if config.status is not None:
        files.append(("status.token_file", config.status.token_file))
    for name, path in files:
        if path is not None and not Path(path).is_file():
            out.append(f"{name}: {path} does not exist (or is not a file)")
    return out


def run(args: argparse.Namespace) -> int:
    from gateway.config import effective_config, load_config
    from gateway.errors import ConfigError

    origins: dict[str, str] = {}
    try:
        config = load_config(args.file, origins=origins)
    except ConfigError as exc:
        print(f"gridtokenx gateway check-config: {exc}", file=sys.stderr)
        return EXIT_INVALID
    effective = effective_config(config)
    if args.json:
        print(json.dumps(effective, indent=2))
    else:
        print(f"# effective configuration of {args.file}: valid; secrets masked, defaults filled in")
        print(as_toml(effective, origins), end="")
    for warning in _warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    return 0
