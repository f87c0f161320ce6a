"""``gridtokenx gateway keygen --out PATH``: create this gateway's Ed25519 device key, on the device.

The key file is created with mode 0600 and never overwritten. Only the public key and its short
fingerprint are printed — for commissioning on the backend — never the secret.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, help="where to create the key, e.g. /var/lib/gridtokenx/device.key"
    )
    parser.add_argument("--gateway-id", help="print the backend commissioning command for this gateway id")


def run(args: argparse.Namespace) -> int:
    from gateway.keys import DeviceKeyError, generate_key  # here: `gateway --help` stays quick

    try:
        key = generate_key(args.out)
    except DeviceKeyError as exc:
        print(f"gridtokenx gateway keygen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    gateway_id = args.gateway_id or "<gateway id>"
    print(f"key file:    {key.path} (mode 0600)")
    print(f"public key:  {key.public_key.hex()}")
    print(f"fingerprint: {key.fingerprint}")
    print("commission it on the backend with:")
    print(f"  gridtokenx backend add-gateway --id {gateway_id} --public-key {key.public_key.hex()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridtokenx gateway keygen", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
