"""``gridtokenx gateway read --config FILE [--json]``: the technician's check.

Polls every configured meter once (with its timeout and retries) and prints one line -- or one JSON
object per line with ``--json`` -- per meter. Each meter is first asked what it is (as ``scan`` does);
a device reporting another model than configured is refused (``identify = "refuse"``, the default) or
its reading flagged (``identify = "flag"``). Exit status: 0 when every meter gave a good reading, 1 when
any meter did not answer, was refused, or gave implausible or flagged values, 2 when the configuration
is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.poller import PollResult

DEFAULT_CONFIG = "/etc/gridtokenx/gateway.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"gateway configuration (default {DEFAULT_CONFIG})")
    parser.add_argument("--json", action="store_true", help="one JSON object per meter and line")
    parser.add_argument(
        "--meter", action="append", metavar="ID", help="only this meter (repeat for several)"
    )


def _as_json(result: PollResult) -> dict[str, Any]:
    s = result.sample
    return {
        "meter_id": result.meter_id,
        "model": result.model,
        "online": s is not None,
        "import_wh": None if s is None else s.import_wh,
        "export_wh": None if s is None else s.export_wh,
        "power_w": None if s is None else s.power_w,
        "meter_error": None if s is None else s.meter_error,
        "problems": [] if s is None else list(s.problems),
        "timestamp_ms": None if s is None else s.timestamp_ms,
        "error": None if result.error is None else str(result.error),
        "identity": None if result.identity is None else result.identity.describe(),
        "identity_problem": result.identity_problem,
        # JSON has no NaN: a non-finite value (already listed in problems) shows as null.
        "values": {} if s is None else {k: (v if math.isfinite(v) else None) for k, v in s.values.items()},
    }


def _as_text(result: PollResult) -> str:
    s = result.sample
    head = f"{result.meter_id:<16} {result.model:<8}"
    if s is None:
        state = "refused" if result.identity_problem is not None else "offline"
        return f"{head} {state:<8} error: {result.error}"
    power = "-" if s.power_w is None else f"{s.power_w} W"
    problems = "; ".join(s.problems) if s.problems else "ok"
    return f"{head} online   import {s.import_wh} Wh  export {s.export_wh} Wh  power {power}  {problems}"


async def _read(config: Any, only: list[str] | None) -> list[PollResult]:
    from gateway.poller import Poller

    if only:
        config = config.model_copy(update={"meter": [m for m in config.meter if m.id in only]})
    async with Poller.from_config(config) as poller:
        return await poller.poll_once()


def run(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from gateway.logs import quiet_for_tools

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"gridtokenx gateway read: {exc}", file=sys.stderr)
        return 2
    if args.meter:
        unknown = sorted(set(args.meter) - {m.id for m in config.meter})
        if unknown:
            print(f"gridtokenx gateway read: no meter {', '.join(unknown)} in {args.config}", file=sys.stderr)
            return 2
    quiet_for_tools()
    results = asyncio.run(_read(config, args.meter))
    for result in results:
        print(json.dumps(_as_json(result)) if args.json else _as_text(result), flush=True)
    bad = [r for r in results if r.sample is None or r.sample.meter_error]
    return 1 if bad else 0
