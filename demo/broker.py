"""An embedded MQTT broker for the demo on machines without Mosquitto: amqtt, in its own process.

    python -m demo.broker --port 18830        # prints "broker ready: 127.0.0.1:18830 (amqtt 0.12.1)"

amqtt is a maintained pure-Python MQTT 3.1.1 broker (QoS 0-2, retained messages, Last Will, persistent
sessions: everything the gateway and the backend use here; shared subscriptions, which only several ingest
processes need, it does not have). Anonymous clients on 127.0.0.1 only. SIGTERM / SIGINT stop it cleanly.

amqtt pins websockets==15.0.1 while solana-py needs websockets>=16, so it cannot be a normal dependency of
this distribution: .ci/setup installs it with ``pip install --no-deps`` plus its other requirements (it runs
with the newer websockets: it uses only its current asyncio API). Without it, and without Mosquitto, the demo
says how to get either.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

__all__ = ["AMQTT_MISSING", "amqtt_available", "main", "serve"]

AMQTT_MISSING = ("neither Mosquitto nor the embedded broker is available: apt-get install mosquitto, or "
                 "pip install --no-deps 'amqtt==0.12.1' dacite psutil 'pwdlib[argon2]' pyyaml transitions typer "
                 "(bash .ci/setup does both)")


def amqtt_available() -> bool:
    try:
        import amqtt.broker  # noqa: F401
    except ImportError:
        return False
    return True


async def serve(port: int, host: str = "127.0.0.1") -> None:
    """Run the broker until SIGTERM / SIGINT."""
    from amqtt import __version__
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # No $SYS publishing, no packet logging: only anonymous access, on loopback.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"broker ready: {host}:{port} (amqtt {__version__})", flush=True)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    if not amqtt_available():
        print(f"demo broker: {AMQTT_MISSING}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.port, args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
