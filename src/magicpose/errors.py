"""Errors that are the user's to fix, and which failures are anticipated: the CLI prints those in one line
without a traceback and exits non-zero; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import os

# Set to 1 (or pass --debug) to see the traceback of a handled failure, and the pose detector's native logs.
DEBUG_VARIABLE = "MAGICPOSE_DEBUG"


class InputError(ValueError):
    """Bad input (a file, an option, a weight folder). The message names the problem and the fix."""


class MissingWeightsError(InputError, FileNotFoundError):
    """A weight file or folder is missing or incomplete."""


class DamagedMediaWarning(UserWarning):
    """A media file decoded only in part (e.g. fewer frames than its header declares). The CLI prints it as a
    warning, or stops with it as an error under `--strict`."""


def debugging(flag: bool = False) -> bool:
    """Whether the user asked for tracebacks: `--debug` (`flag`) or MAGICPOSE_DEBUG=1."""
    return bool(flag) or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def failure_message(error: Exception) -> str | None:
    """What the user is told about an anticipated failure; None for a bug, which keeps its traceback."""
    if isinstance(error, InputError):
        return str(error)
    if isinstance(error, DamagedMediaWarning):
        return f"{error}; stopped by --strict (without it the run goes on with the frames that decode)"
    name = type(error).__name__
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {error.filename}" if error.filename else ""
        return f"no space left on the device{where}; free some space or write to another disk (nothing was replaced)"
    if isinstance(error, PermissionError):
        return f"permission denied: {error.filename or error}; choose a path you can write to (or read)"
    if name == "OutOfMemoryError" or isinstance(error, MemoryError):
        return (
            f"out of memory ({error}); try a smaller --size, fewer frames at a time (--frame-chunk), "
            "--dtype fp16/bf16 or --cpu-offload"
        )
    if name == "DecompressionBombError":
        return f"{error}; the image is too large to decode safely: resize it first"
    return None
