"""``gridtokenx programs``: build the on-chain programs and check the committed .so files."""

from __future__ import annotations

import argparse
import sys

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


def run(args: argparse.Namespace) -> int:
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
