"""Command line interface: ``bimacosr <command> ...``, sharing the engine with the GUI."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import info, upscale

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bimacosr",
        description="Upscale photos 4x offline with a 1-bit diffusion super-resolution model.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    info.add_parser(subparsers)
    upscale.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.run(args)
