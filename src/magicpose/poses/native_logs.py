"""Silence the pose detector's native logging (shown with `--debug` / MAGICPOSE_DEBUG=1).

mediapipe's C++ (TFLite's "Created TensorFlow Lite XNNPACK delegate", absl's "W0000 ... inference_feedback_
manager" lines) writes straight to file descriptor 2, before any log setting can reach it: GLOG_minloglevel,
TF_CPP_MIN_LOG_LEVEL and absl's Python verbosity leave those lines alone (mediapipe 0.10.21 logs through
absl before `absl::InitializeLog`). So while the detector runs, descriptor 2 points at /dev/null and
Python's `sys.stderr` (progress bars, warnings, our messages) at a copy of the real one.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import threading
from collections.abc import Iterator

from magicpose.errors import debugging

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, object] | None = None  # (a copy of descriptor 2, the sys.stderr it replaced)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Descriptor 2 to /dev/null for the duration, Python's stderr kept; nests, and is shared by threads
    (the first to enter silences, the last to leave restores)."""
    global _depth, _saved
    if debugging():
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = _silence()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                _restore(*_saved)
                _saved = None


def quietly(method):
    """A decorator: the method runs under `quiet()`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with quiet():
            return method(*args, **kwargs)

    return wrapper


def _silence() -> tuple[int, object] | None:
    try:
        sys.stderr.flush()
        copy = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, AttributeError, ValueError):
        return None  # no descriptor 2 (a service without stderr): nothing to silence
    os.dup2(null, 2)
    os.close(null)
    previous = sys.stderr
    if _writes_to_descriptor_2(previous):  # else Python's stderr is already elsewhere (a test's capture)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(copy, "w", closefd=False),
            encoding=getattr(previous, "encoding", None) or "utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
    return copy, previous


def _restore(copy: int, previous) -> None:
    if sys.stderr is not previous:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        sys.stderr = previous
    os.dup2(copy, 2)
    os.close(copy)


def _writes_to_descriptor_2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
