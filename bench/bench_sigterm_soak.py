"""SIGTERM soak: the real ``gateway run`` stopped at hundreds of random moments. Prints how each exited.

The long version of tests/gateway/test_sigterm_any_moment.py (same configurations, same checks): 10 TCP
meters at 0.2 s with a late and an unsolicited one, or the mixed TCP + RTU + SunSpec set-up, ``--gateways``
daemons side by side, each SIGTERMed after a random time (seeded, so a failing run can be repeated). Every
run must exit 0 within cli_run.SHUTDOWN_DEADLINE_S with its outbox intact. Prints the exit statuses, the
time from SIGTERM to exit (median, 99th percentile, maximum) and the readings held.

    python bench/bench_sigterm_soak.py                           # 200 runs, TCP set-up
    python bench/bench_sigterm_soak.py --runs 100 --mixed        # TCP + RTU + SunSpec (needs socat)
    python bench/bench_sigterm_soak.py --seed 7 --gateways 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "firmware-sim"), str(ROOT / "tests" / "gateway")]

from gwtest_helpers import meter_sim_process  # noqa: E402
from test_sigterm_any_moment import (  # noqa: E402  (the test module is the single source of these set-ups)
    check_outbox,
    config_text,
    keygen,
    meter,
    rtu_line,
    sigterm_run,
)

from gateway.cli_run import SHUTDOWN_DEADLINE_S  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--gateways", type=int, default=2, help="daemons stopped side by side per round")
    parser.add_argument("--mixed", action="store_true", help="TCP + RTU (pty pairs) + SunSpec set-up")
    parser.add_argument("--seed", type=int, default=1309)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    statuses: dict[object, int] = {}
    took: list[float] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gtx-sigterm-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        broker = stack.enter_context(Mosquitto(work / "broker"))
        configs = []
        if args.mixed:
            tcp = stack.enter_context(meter_sim_process(
                ["--meter", "sdm630:1", "--meter", "sunspec:2", "--fault", "2:slow", "--delay", "0.5",
                 "--tcp", "127.0.0.1:0"]))
        else:
            tcp = stack.enter_context(meter_sim_process(
                [*(a for u in range(1, 6) for a in ("--meter", f"sdm630:{u}")),
                 *(a for u in range(6, 11) for a in ("--meter", f"sdm120:{u}")),
                 "--fault", "3:slow", "--delay", "0.45", "--fault", "7:unsolicited", "--tcp", "127.0.0.1:0"]))
        for i in range(args.gateways):
            gw = work / f"gw{i}"
            keygen(gw / "state")
            buses = f'[[bus]]\nname = "lan"\ntype = "tcp"\nhost = "{tcp["host"]}"\nport = {tcp["port"]}\n\n'
            if args.mixed:
                device = stack.enter_context(rtu_line(i))
                buses += f'[[bus]]\nname = "rs485"\ntype = "rtu"\ndevice = "{device}"\nbaudrate = 19200\n\n'
                meters = (meter("tcp-3p", "sdm630", 1, "lan", 0.2, 0.4) + meter("tcp-pv", "sunspec", 2, "lan", 0.2, 0.4)
                          + meter("rtu-1p", "sdm120", 5, "rs485", 0.5, 0.3)
                          + meter("rtu-3p-late", "sdm630", 6, "rs485", 0.5, 0.3)
                          + meter("rtu-noisy", "sdm120", 7, "rs485", 0.5, 0.3)
                          + meter("rtu-pv", "sunspec", 8, "rs485", 0.5, 0.3))
            else:
                meters = "".join(meter(f"m{u}", "sdm630" if u <= 5 else "sdm120", u, "lan", 0.2, 0.3)
                                 for u in range(1, 11))
            config = gw / "gateway.toml"
            config.write_text(config_text(f"gw-soak-{i}", gw / "state", broker.port, buses, meters))
            configs.append(config)

        import concurrent.futures

        started = time.monotonic()
        done = 0
        with concurrent.futures.ThreadPoolExecutor(len(configs)) as pool:
            while done < args.runs:
                futures = [pool.submit(sigterm_run, c, work / f"run-{done + i}.log", random.Random(rng.random()))
                           for i, c in enumerate(configs[: args.runs - done])]
                for i, future in enumerate(futures):
                    status, seconds, log = future.result()
                    statuses[status] = statuses.get(status, 0) + 1
                    took.append(seconds)
                    if status != 0 or " stopped: " not in log or seconds >= SHUTDOWN_DEADLINE_S:
                        failures.append(f"run {done + i}: status {status} after {seconds:.1f} s\n{log[-1500:]}")
                done += len(futures)
                for c in configs:
                    check_outbox(c.parent / "state")
                if done % 20 < len(configs):
                    print(f"  {done} runs, {time.monotonic() - started:.0f} s: statuses {statuses}", flush=True)
        held = [check_outbox(c.parent / "state") for c in configs]
    took.sort()
    print(f"{len(took)} SIGTERM runs ({'TCP + RTU + SunSpec' if args.mixed else '10 TCP meters at 0.2 s'}, "
          f"seed {args.seed}): exit statuses {statuses}")
    print(f"  SIGTERM to exit: median {statistics.median(took) * 1000:.0f} ms, 99th percentile "
          f"{took[int(len(took) * 0.99) - 1] * 1000:.0f} ms, max {took[-1] * 1000:.0f} ms "
          f"(deadline {SHUTDOWN_DEADLINE_S:g} s)")
    print(f"  outboxes intact after every round; readings held at the end: {held}")
    kind = "mixed" if args.mixed else "tcp"
    print(f"FIGURE sigterm_runs_not_clean_{kind} {len(failures)} of {len(took)} runs")
    print(f"FIGURE sigterm_stop_max_ms_{kind} {took[-1] * 1000:.0f} ms")
    if failures:
        print("\n".join(failures[:5]))
        raise SystemExit(f"{len(failures)} runs did not stop cleanly")


if __name__ == "__main__":
    main()
