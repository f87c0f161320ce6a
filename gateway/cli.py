"""``gridtokenx gateway ...``: the edge daemon's command line.

Each sub-subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``
and listed in :data:`SUBCOMMANDS`; modules keep heavy imports inside ``run`` so ``--help`` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

__all__ = ["SUBCOMMANDS", "add_arguments", "run"]

# subcommand -> (module, help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "read": ("gateway.cli_read", "poll every configured meter once and print one reading per meter"),
    "scan": ("gateway.cli_scan", "probe Modbus unit ids on a serial line or a TCP gateway for meters"),
    "run": ("gateway.cli_run", "the daemon: poll, sign, store and forward readings until SIGTERM"),
    "keygen": ("gateway.cli_keygen", "create this device's Ed25519 key (0600) and print its public key"),
    "check-config": (
        "gateway.cli_check_config",
        "validate a configuration (file + environment) and print it with defaults, secrets masked; exit 0/2",
    ),
}

DEFAULT_CONFIG = "/etc/gridtokenx/gateway.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="gateway_command", metavar="SUBCOMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        runner: Callable[[argparse.Namespace], int] = module.run
        sp.set_defaults(gateway_run=runner)


def run(args: argparse.Namespace) -> int:
    runner: Callable[[argparse.Namespace], int] = args.gateway_run
    return runner(args)
