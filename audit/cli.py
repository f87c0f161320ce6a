"""``gridtokenx verify``: audit every GRID token from the chain, trusting neither the backend nor its database.

    gridtokenx verify --chain http://127.0.0.1:8899 --deployment deployment.json
    gridtokenx verify --chain URL --deployment FILE --readings postgresql://… --database postgresql://… --json

Exit status: 0 every check passed, 1 discrepancies (each printed with its transaction and account),
2 the audit could not run (chain unreachable, no deployment, unreadable database).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

EXIT_OK, EXIT_DISCREPANCY, EXIT_CANNOT_RUN = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chain", required=True,
                        help="the chain's JSON-RPC URL (a cluster, an RPC provider, or `backend localnet`), or an "
                             "embedded chain's state: its directory (<data_dir>/chain) or chain.db")
    parser.add_argument("--deployment", type=Path,
                        help="deployment file naming the program ids (written by `gridtokenx programs deploy`; "
                             "default for an embedded chain: deployment.json beside its state)")
    parser.add_argument("--program", action="append", default=[], metavar="NAME=ID",
                        help="a program id instead of (or over) the deployment file's: energy_token, registry, "
                             "trading, certificates, payments")
    parser.add_argument("--readings", metavar="DB",
                        help="the backend's database (postgresql://… or sqlite:///path): every settled reading "
                             "must be stored there byte for byte")
    parser.add_argument("--database", metavar="DB",
                        help="the backend's database: its payments (D7) must match the chain's THBC movements")
    parser.add_argument("--commitment", default="confirmed", choices=["processed", "confirmed", "finalized"])
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    from audit.database import DatabaseReadError
    from audit.source import ChainReadError, ChainSource, RpcSource
    from audit.statefile import StateFileSource
    from audit.verify import AuditError, Programs, audit

    try:
        ids: dict[str, str] = {}
        state = None if args.chain.startswith(("http://", "https://")) else Path(args.chain)
        deployment = args.deployment
        if deployment is None and state is not None:
            beside = (state if state.is_dir() else state.parent) / "deployment.json"
            deployment = beside if beside.exists() else None
        if deployment is not None:
            base = Programs.load(deployment)
            ids = {name: str(pid) for name in Programs.NAMES if (pid := getattr(base, name)) is not None}
        for item in args.program:
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--program {item!r}: expected NAME=ID")
            ids[name.strip()] = value.strip()
        if not ids:
            raise ValueError("name the programs: --deployment FILE or --program energy_token=ID …")
        programs = Programs.from_mapping(ids)
        source: ChainSource = (StateFileSource(state) if state is not None
                               else RpcSource(args.chain, commitment=args.commitment))
    except (ValueError, ChainReadError) as exc:
        print(f"gridtokenx verify: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        report = audit(source, programs, readings_db=args.readings, payments_db=args.database)
    except (AuditError, ChainReadError, DatabaseReadError) as exc:
        print(f"gridtokenx verify: cannot audit: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    finally:
        source.close()
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        print()
    else:
        print(report.text())
    return EXIT_OK if report.ok else EXIT_DISCREPANCY
