"""Giving back the pages of a memory-mapped checkpoint once its tensors have been copied (Linux)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from pathlib import Path

import torch


class MappedPageRelease:
    """Drop this process's resident pages of a memory-mapped checkpoint tensor once it has been cast.

    The pages of a mapped file count towards the process's memory as long as they are mapped: casting
    a UNet to float16 would otherwise hold its float32 pages (3.4 GB) beside the cast (1.7 GB). Only
    whole pages inside a mapping of `checkpoint` itself are released (`madvise(MADV_DONTNEED)`): the
    file's mappings are private and never written, so a later read maps the file's bytes again.
    Linux only; elsewhere it does nothing.
    """

    MADV_DONTNEED = 4

    def __init__(self, checkpoint: str | Path):
        self.ranges: list[tuple[int, int]] = []
        self.madvise = None
        if not sys.platform.startswith("linux"):
            return
        with contextlib.suppress(OSError, AttributeError, ValueError):
            inode = os.stat(checkpoint).st_ino
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                for line in maps:
                    fields = line.split(maxsplit=5)
                    if len(fields) == 6 and fields[4] == str(inode) and same_file(fields[5].strip(), checkpoint):
                        start, end = (int(address, 16) for address in fields[0].split("-"))
                        self.ranges.append((start, end))
            if not self.ranges:
                return
            libc = ctypes.CDLL(None, use_errno=True)
            self.madvise = libc.madvise
            self.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            self.page = os.sysconf("SC_PAGE_SIZE")

    def __call__(self, tensor: torch.Tensor) -> None:
        if self.madvise is None or tensor.device.type != "cpu" or not tensor.is_contiguous():
            return
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        for low, high in self.ranges:
            first = -(-max(start, low) // self.page) * self.page  # whole pages: the ends may hold a neighbour's bytes
            last = min(end, high) // self.page * self.page
            if last > first:
                self.madvise(first, last - first, self.MADV_DONTNEED)


def same_file(mapped: str, path: str | Path) -> bool:
    try:
        return os.path.samefile(mapped, path)
    except OSError:  # "[heap]", a deleted file, ...
        return False
