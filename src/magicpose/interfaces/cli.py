"""The `magicpose` console script.

Each subcommand lives in `magicpose.interfaces.commands.<name>` and exposes `register(subparsers)`,
which adds its parser and sets `func` (called with the parsed namespace, returns an exit code).
A subcommand is listed here only once it works.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import warnings

from magicpose.errors import DEBUG_VARIABLE, DamagedMediaWarning, debugging, failure_message

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
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the full traceback of a failure (for bug reports; or set {DEBUG_VARIABLE}=1)",
    )
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
    debug = debugging(args.debug)
    try:
        with terminate_as_interrupt(), warnings.catch_warnings(), debug_variable(args.debug):
            warnings.showwarning = one_line_warnings(args.command)
            if getattr(args, "strict", False):
                warnings.simplefilter("error", DamagedMediaWarning)
            return int(args.func(args) or 0)
    except Exception as error:
        message = failure_message(error)
        if message is None or debug:
            raise
        print(f"magicpose {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        if debug:
            raise
        # what was being written is removed by the atomic writers as the interrupt unwinds through them
        signal_number = interrupt.args[0] if interrupt.args else signal.SIGINT
        print(f"magicpose {args.command}: interrupted; nothing half-written was left", file=sys.stderr)
        return 128 + int(signal_number)


@contextlib.contextmanager
def debug_variable(debug: bool):
    """--debug as MAGICPOSE_DEBUG=1 for the run, so that the library (the detector's native logs) sees it."""
    previous = os.environ.get(DEBUG_VARIABLE)
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"
    try:
        yield
    finally:
        if debug and previous is None:
            os.environ.pop(DEBUG_VARIABLE, None)
        elif debug:
            os.environ[DEBUG_VARIABLE] = previous


class terminate_as_interrupt:
    """SIGTERM (a scheduler's or `kill`'s stop) unwinds like Ctrl-C, so outputs are cleaned up and training
    saves a checkpoint on the way out; the previous handler comes back afterwards."""

    def __enter__(self):
        self.previous = None
        try:
            self.previous = signal.signal(signal.SIGTERM, self.raise_interrupt)
        except ValueError:  # not the main thread (e.g. called from a test runner's worker thread)
            pass
        return self

    @staticmethod
    def raise_interrupt(signal_number, frame):
        raise KeyboardInterrupt(signal_number)

    def __exit__(self, *exc_info):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def one_line_warnings(command: str):
    """Our own warnings as `magicpose COMMAND: warning: ...` lines; others (libraries') as Python prints them."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning) and "magicpose" in str(filename):
            print(f"magicpose {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


if __name__ == "__main__":
    sys.exit(main())
