"""The `dreamor` console script. Each subcommand imports its module lazily (fast --help).

User mistakes (DreamorError) print one line, ``error: ...``, and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys

from .errors import DreamorError


def _cmd_convert(args: argparse.Namespace) -> int:
    from .data.convert import run_convert

    return run_convert(args.inputs, args.output, workers=args.workers, quiet=args.quiet)


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import summarize

    for path in args.files:
        print(summarize(path))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server.server import run_serve

    return run_serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamor", description="DREAMoR motion refinement backend")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "convert",
        help="convert BVH (Bandai, CMU, LAFAN1) to SMPL-22 clip .npz, or a clip .npz to an SMPL-22 BVH",
        description="IN.bvh OUT.npz | IN.npz OUT.bvh | IN_FOLDER... OUT_FOLDER (every .bvh/.bvh.gz inside, recursively)",
    )
    p.add_argument("inputs", nargs="+", help="input file(s) or folder(s)")
    p.add_argument("output", help="output file (.npz or .bvh) or folder")
    p.add_argument("--workers", type=int, default=0, help="processes for folders (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("info", help="summarise motion files (.bvh, .bvh.gz, .npz) as SMPL-22 clips")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("serve", help="run the refinement backend (ZeroMQ) for the Blender add-on")
    p.add_argument("--connection-file", default=None, help="where to write the connection file")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DreamorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
