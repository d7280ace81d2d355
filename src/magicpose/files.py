"""File helpers shared by every writer: outputs appear whole or not at all, readable as ordinary files are."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from magicpose.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error removed.

    A crash or a bad input therefore never leaves a half-written file under the requested name,
    and never damages a good file that was already there. `suffix` defaults to the target's, so
    writers that pick a format from the extension (PyAV, PIL) still do.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix, dir=parent
        )
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}; choose a writable output path") from error
    os.close(handle)
    temporary = Path(temporary)
    os.chmod(temporary, 0o666 & ~process_umask())  # mkstemp makes owner-only files; outputs are ordinary files
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; on success it takes the place of `path` whole.

    On error it is removed and `path` is left as it was. An existing non-empty `path` is an error
    unless `overwrite`. Everything in the folder is then given the modes that ordinary `open` and
    `mkdir` give under the process umask (`mkdtemp` and some writers make owner-only entries).
    """
    path = Path(path)
    occupied = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if occupied and not overwrite:
        raise InputError(f"{path} already exists; choose another output folder or pass --overwrite")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}; choose a writable output folder") from error
    try:
        yield temporary
        make_ordinary(temporary)
        replace_folder(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def replace_folder(new: Path, path: Path) -> None:
    """Put the folder `new` at `path`. An old `path` is first moved aside (a rename, so it is never half
    deleted), and put back if the new one cannot take its place; only then is it removed."""
    if not (path.exists() or path.is_symlink()):
        new.rename(path)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
    os.replace(path, aside / path.name)
    try:
        new.rename(path)
    except BaseException:
        os.replace(aside / path.name, path)
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


def make_ordinary(root: str | os.PathLike) -> None:
    """Give `root` and everything under it the modes `mkdir` (0o777) and `open` (0o666) give under the
    process umask, as if written by plain file calls. Symbolic links are left alone."""
    mask = process_umask()
    folder_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    root = Path(root)
    os.chmod(root, folder_mode)
    for folder, folders, files in os.walk(root):
        for name in folders:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), folder_mode)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), file_mode)


def process_umask() -> int:
    """The process umask, read without changing it.

    `os.umask` can only read the mask by setting it, and a thread creating a file during the round trip
    would get the temporary mask; Linux reports the mask in /proc/self/status instead. Elsewhere the
    value read once at import is used.
    """
    mask = _umask_from_proc()
    return mask if mask is not None else _UMASK_AT_IMPORT


def _umask_from_proc() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_round_trip() -> int:
    mask = os.umask(0o077)  # a file created meanwhile gets owner-only modes, never looser ones
    os.umask(mask)
    return mask


# The round trip runs only where /proc does not report the mask, once, at import (before worker threads).
_UMASK_AT_IMPORT = _umask_from_proc()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _umask_round_trip()
