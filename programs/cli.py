"""``gridtokenx programs``: build the on-chain programs, check the committed .so files, deploy them.

    gridtokenx programs build [NAME …] [--check]
    gridtokenx programs list
    gridtokenx programs deploy --url URL --keypair FILE [--out deployment.json] [--fee-bps 25]
                               [--payment-gateway FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from programs.toolchain.build import BuildError, build_program, check_programs, list_programs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="programs_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build",
        help="compile programs/<name>/src/*.c with clang-19 and link programs/<name>/<name>.so",
        description="Build the named programs (all by default) into programs/<name>/<name>.so.",
    )
    build.add_argument("names", nargs="*", metavar="NAME", help="program folder names (default: all)")
    build.add_argument(
        "--check",
        action="store_true",
        help="rebuild in a temporary directory and exit 1 if any committed .so differs",
    )
    sub.add_parser("list", help="list the programs that have sources")
    deploy = sub.add_parser(
        "deploy",
        help="deploy and initialise registry, energy_token, trading and certificates over JSON-RPC",
        description="Deploy every program through the BPF Upgradeable Loader with --keypair as upgrade "
                    "authority (it pays, and becomes the registry authority, certificates governance and "
                    "market authority), create the GRID and THBC mints and the market, and write the "
                    "deployment file the backend reads ([chain] deployment_file).",
    )
    deploy.add_argument("--url", required=True, help="the cluster's JSON-RPC URL")
    deploy.add_argument("--keypair", required=True, type=Path, help="Solana keypair file of the admin (pays)")
    deploy.add_argument("--out", type=Path, default=Path("deployment.json"), help="deployment file to write")
    deploy.add_argument("--fee-bps", type=int, default=25, help="market fee in basis points (default 25)")
    deploy.add_argument("--payment-gateway", type=Path,
                        help="keypair file of the payments operator, who issues THBC against deposit references "
                             "(created next to --out if missing)")


def run(args: argparse.Namespace) -> int:
    if args.programs_command == "deploy":
        import asyncio

        return asyncio.run(_deploy(args))
    available = list_programs()
    if args.programs_command == "list":
        for name in available:
            print(name)
        return 0
    names = args.names or available
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"programs build: unknown program(s) {', '.join(unknown)}; known: {', '.join(available)}",
              file=sys.stderr)
        return 2
    try:
        if args.check:
            results = check_programs(names)
            for r in results:
                print(f"{r.name}: {'DIFFERS from' if r.changed else 'matches'} {r.path} ({r.size} bytes)")
            return 1 if any(r.changed for r in results) else 0
        for name in names:
            r = build_program(name)
            print(f"{r.name}: {'wrote' if r.changed else 'unchanged'} {r.path} ({r.size} bytes)")
    except BuildError as exc:
        print(f"programs build: {exc}", file=sys.stderr)
        return 1
    return 0


async def _deploy(args: argparse.Namespace) -> int:
    from solders.keypair import Keypair

    from programs.client.chain import ChainError, RpcChain, TransactionFailed
    from programs.deployment import DeploymentError, deploy_all, load_keypair, save_keypair

    try:
        admin = load_keypair(args.keypair)
        gateway_file = args.payment_gateway or args.out.parent / "payment-gateway.json"
        if not gateway_file.exists():
            save_keypair(gateway_file, Keypair())
            print(f"programs deploy: new payment operator key (issues THBC against deposits) in {gateway_file} "
                  "(0600)")
        gateway = load_keypair(gateway_file)
    except DeploymentError as exc:
        print(f"programs deploy: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.fee_bps <= 10_000:
        print("programs deploy: --fee-bps must be between 0 and 10000", file=sys.stderr)
        return 2
    try:
        async with RpcChain(args.url) as chain:
            await chain.fund(gateway.pubkey(), 10**9)  # the operator pays each deposit record's rent
            deployment = await deploy_all(chain, admin, payment_operator=gateway.pubkey(), fee_bps=args.fee_bps,
                                          cluster=args.url)
    except (ChainError, TransactionFailed) as exc:
        print(f"programs deploy: {exc}", file=sys.stderr)
        return 1
    deployment.save(args.out)
    for name, pid in deployment.programs.items():
        print(f"{name}: {pid}")
    print(f"GRID mint {deployment.grid_mint}, THBC mint {deployment.thbc_mint}, market {deployment.market}")
    print(f"deployment written to {args.out}")
    return 0
