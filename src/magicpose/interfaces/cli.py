"""The `magicpose` console script.

Each subcommand lives in `magicpose.interfaces.commands.<name>` and exposes `register(subparsers)`,
which adds its parser and sets `func` (called with the parsed namespace, returns an exit code).
A subcommand is listed here only once it works.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from magicpose.errors import InputError

COMMANDS = [
    "demo",
    "convert",
    "animate",
    "pose",
    "train",
    "data",
    "evaluate",
    "app",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magicpose", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"magicpose.interfaces.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops matching positionals at the first option: `train CONFIG --resume k=v` leaves k=v over
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.version:
        from magicpose import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as error:
        print(f"magicpose {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
