"""Command line interface: ``bimacosr <command> ...``, sharing the engine with the GUI."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..logs import setup_logging
from . import info, upscale

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bimacosr",
        description="Upscale photos 4x offline with a 1-bit diffusion super-resolution model.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="upscale a bundled image with every available backend, compare "
                             "with the stored golden result; exit 0, or 1 with a reason")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    info.add_parser(subparsers)
    upscale.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    if args.self_test:
        from ..selftest import self_test_main

        return self_test_main()
    if args.command is None:
        parser.print_help()
        return 2
    return args.run(args)
