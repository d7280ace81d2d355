"""File helpers shared by every writer: outputs appear whole or not at all, readable as ordinary files are.

Every output goes through `check_output` before any work and is written through `atomic_path` /
`atomic_folder`: `~` is expanded, a symbolic link is written through to its target (the new file is
made beside the target and renamed onto it, so the link stays a link), and the temporaries a killed
run left beside an output are removed by the next run that writes it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from magicpose.errors import InputError

# `scheme://...` as typed, or as Path folds it (`https:/host/...`); two letters at least, as `C:/` is a drive
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def is_url(path: str | os.PathLike) -> bool:
    return bool(URL.match(str(path)))


def not_found(path: str | os.PathLike, what: str) -> InputError:
    """The error for an input that does not exist, telling a URL (never fetched) from a missing file."""
    if is_url(path):
        return InputError(f"{what} {path} is a URL; URLs are not read: download the file first and pass its path")
    return InputError(f"{what} not found: {path}")


def output_target(path: str | os.PathLike) -> Path:
    """Where writing `path` lands: `~` expanded, a symbolic link followed to its target (which need not exist)."""
    path = Path(path).expanduser()
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def temporary_prefix(path: Path) -> str:
    """`.NAME.PID.`: the writer's process id tells a later run whether the temporary is a killed run's."""
    return f".{path.name}.{os.getpid()}."


# A temporary without a process id (written by an older version) counts as left behind after this long unchanged.
UNNAMED_TEMPORARY_AGE_S = 600


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries that runs killed while writing `path` left beside it: `.NAME.PID.XXXXXXXX[.ext]`
    of a process that no longer runs (and, from older versions, `.NAME.XXXXXXXX[.ext]` unchanged for 10
    minutes). Only names `mkstemp`/`mkdtemp` make are touched; a live writer's are kept, as are the old
    folders `replace_folder` sets aside."""
    parent = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(re.escape(f".{path.name}.") + r"(?:(\d+)\.)?[a-z0-9_]{8}(?:\.[A-Za-z0-9]+)?")
    removed = []
    try:
        entries = [(entry, pattern.fullmatch(entry.name)) for entry in parent.iterdir()]
    except OSError:
        return removed
    for entry, match in entries:
        if match is None:
            continue
        try:
            if match.group(1) is not None:
                stale = not _process_runs(int(match.group(1)))
            else:
                stale = time.time() - entry.lstat().st_mtime > UNNAMED_TEMPORARY_AGE_S
            if stale and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif stale:
                entry.unlink()
            if stale:
                removed.append(entry)
        except OSError:
            continue  # another run removed it first, or it is not ours to remove
    return removed


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or a number too large to be ours: leave it
    return True


def check_output(
    path: str | os.PathLike, option: str, suffixes: tuple[str, ...] = (), inputs: tuple = (), folder: bool = False
) -> Path:
    """Refuse, before any work, an output that could not be written whole or would destroy an input; returns
    the path with `~` expanded.

    `option` names the output in messages (`--out`, `the pose file`); `inputs` are the files and folders the
    run reads (its inputs, a jobs file): an output may be none of them, also through a symbolic link. An
    existing file must be writable by this user (a write-protected file is the user's "keep this"; root may
    write any). The nearest existing folder above the output must take a new file (tried for real: a
    permission check says yes to root even on /proc).
    """
    path = Path(path).expanduser()
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{option} must end in {' or '.join(suffixes)}, got {path}")
    target = output_target(path)
    shown = path if target == path else f"{path} (a link to {target})"
    if target.is_dir() and not folder:
        raise InputError(
            f"{option} {shown} is a folder; give a file name, e.g. {path / ('out' + (suffixes or ('',))[0])}"
        )
    if target.exists() and folder and not target.is_dir():
        raise InputError(f"{option} {shown} is a file; give a folder")
    resolved = target.resolve()
    for item in inputs:
        if item is not None and resolved == Path(item).expanduser().resolve():
            raise InputError(f"{option} {shown} would overwrite {item}, which this run uses; write it elsewhere")
    if target.is_file() and not os.access(target, os.W_OK):
        raise InputError(f"{option} {shown} is write-protected; make it writable (chmod u+w) or choose another name")
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".magicpose-probe-"):
            pass
    except OSError as error:
        raise InputError(
            f"{option} {path}: cannot write in {parent} ({error.strerror}); choose a writable place"
        ) from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error removed.

    A crash or a bad input therefore never leaves a half-written file under the requested name,
    and never damages a good file that was already there. `suffix` defaults to the target's, so
    writers that pick a format from the extension (PyAV, PIL) still do. A symbolic link at `path` is
    written through: its target is replaced (created, if the link dangles) and the link kept.
    """
    path = output_target(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        handle, temporary = tempfile.mkstemp(
            prefix=temporary_prefix(path), suffix=suffix if suffix is not None else path.suffix, dir=parent
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
    path = output_target(path)
    occupied = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if occupied and not overwrite:
        raise InputError(f"{path} already exists; choose another output folder or pass --overwrite")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        temporary = Path(tempfile.mkdtemp(prefix=temporary_prefix(path), dir=parent))
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
