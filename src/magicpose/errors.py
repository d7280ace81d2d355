"""Errors that are the user's to fix: the CLI prints them without a traceback and exits non-zero."""

# Set to 1 (or pass --debug) to see the traceback of a handled failure, and the pose detector's native logs.
DEBUG_VARIABLE = "MAGICPOSE_DEBUG"


class InputError(ValueError):
    """Bad input (a file, an option, a weight folder). The message names the problem and the fix."""


class MissingWeightsError(InputError, FileNotFoundError):
    """A weight file or folder is missing or incomplete."""


class DamagedMediaWarning(UserWarning):
    """A media file decoded only in part (e.g. fewer frames than its header declares). The CLI prints it as a
    warning, or stops with it as an error under `--strict`."""
