"""The ``dbnb`` console script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dbnb.errors import DbnbError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one command; return the process exit code."""
    parser = argparse.ArgumentParser(prog="dbnb", description="dbnb command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="a short end-to-end tour on the embedded PostgreSQL")
    # `dbnb tutorials` parses its own arguments (dbnb.tutorials.main).
    sub.add_parser("tutorials", help="run the tutorial notebooks into HTML docs", add_help=False)
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "demo":
            from dbnb.demo import tour

            return tour(print)
        if args.command == "tutorials":
            from dbnb import tutorials

            return tutorials.main(rest, print)
    except DbnbError as exc:
        print(f"dbnb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2
