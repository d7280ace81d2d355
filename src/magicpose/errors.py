"""Errors that are the user's to fix: the CLI prints them without a traceback and exits non-zero."""


class InputError(ValueError):
    """Bad input (a file, an option, a weight folder). The message names the problem and the fix."""


class MissingWeightsError(InputError, FileNotFoundError):
    """A weight file or folder is missing or incomplete."""
