"""``python -m meter_sim ...``: the same as ``gridtokenx meter-sim ...`` without the core CLI."""

import argparse
import logging
import sys

from meter_sim.cli import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m meter_sim")
add_arguments(parser)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sys.exit(run(parser.parse_args()))
