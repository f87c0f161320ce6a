"""The ``gridtokenx`` command. Each subcommand's module is imported only when it runs, so the gateway
on a Pi never imports the backend's or the chain's libraries."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from gridtokenx import __version__

# subcommand -> (module, help). The module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "meter-sim": ("meter_sim.cli", "serve simulated energy meters over Modbus TCP or RTU"),
    "gateway": ("gateway.cli", "the edge daemon and its technician tools (read, scan, run, keygen)"),
    "backend": ("backend.cli", "the backend: verify, store and acknowledge signed readings"),
    "demo": ("demo.cli", "one command: simulated meters through the gateway to the backend and the market"),
    "programs": ("programs.cli", "build and inspect the on-chain programs"),
    "wallet": ("gridtokenx.wallet", "a keypair-file wallet: sign in, register, sell, buy, cancel (signs locally)"),
    "verify": ("audit.cli", "audit every GRID token from the chain alone (signed readings, supply, escrow)"),
}


def _configure_logging(level: str) -> None:
    # Foreground daemon: logs go to stderr, which systemd hands to journald.
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The HTTP clients under solana-py log every request at INFO: one line per JSON-RPC call.
    for noisy in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="gridtokenx", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gridtokenx {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("GRIDTOKENX_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR (env GRIDTOKENX_LOG_LEVEL)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen subcommand's module is imported; the others get a stub parser for --help.
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    runner: Callable[[argparse.Namespace], int] | None = None
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            try:
                loaded = importlib.import_module(module)
            except ImportError as exc:
                print(
                    f"gridtokenx {name}: cannot load ({exc}). Install the matching extra, "
                    f"e.g. pip install 'gridtokenx-edge[gateway]'",
                    file=sys.stderr,
                )
                return 2
            loaded.add_arguments(sp)
            runner = loaded.run
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    assert runner is not None
    try:
        return runner(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
