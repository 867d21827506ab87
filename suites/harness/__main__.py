"""python3 -m harness SUITE [--port-offset N] [SCENARIO...]: faults, ha, restore or chaos."""
import importlib.util
import os
import sys

from .suite import main
from .topology import REPO

SUITES = ("faults", "ha", "restore", "chaos")

if len(sys.argv) < 2 or sys.argv[1] not in SUITES:
    print(f"usage: python3 -m harness {{{'|'.join(SUITES)}}} [--port-offset N] [SCENARIO...]", file=sys.stderr)
    sys.exit(64)
name = sys.argv[1]
spec = importlib.util.spec_from_file_location(f"suite_{name}", os.path.join(REPO, "suites", name, "scenarios.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.exit(main(module.SUITE, sys.argv[2:]))
