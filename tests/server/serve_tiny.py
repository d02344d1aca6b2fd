"""Run a real backend process with the tiny test runner (for the process-level tests and
the benchmark): ``python tests/server/serve_tiny.py --connection-file F [--step-s S]``."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_runner import TinyRunner  # noqa: E402

from dreamor.server.server import serve  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--connection-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--step-s", type=float, default=0.0)
    p.add_argument("--warning", default="", help="a warning every result carries (as the real runner's guard)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE", help="a number every result carries")
    args = p.parse_args()
    metrics = {name: float(value) for name, _, value in (m.partition("=") for m in args.metric)}
    logging.basicConfig(level=logging.WARNING, format="serve_tiny: %(message)s")
    sys.exit(serve({"cpu": TinyRunner(window=args.window, step_s=args.step_s, warning=args.warning,
                                       metrics=metrics)}, connection_file=args.connection_file, port=args.port))
