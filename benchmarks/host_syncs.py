"""Count the points where a GPU run would wait for the device, on any device (the CPU included).

A host synchronisation is an op whose result the host must read before it can go on: a tensor turned
into a Python number or bool (`aten._local_scalar_dense`: `item()`, `bool()`, `int()`, indexing a table
with a tensor), or an op whose output size depends on the data (`nonzero`, `masked_select`, ...). On a
GPU `torch.cuda.set_sync_debug_mode` reports the same points; this counter sees them on the CPU too, so
a test can count them where no GPU is.
"""

from __future__ import annotations

import traceback
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNCING = {
    "_local_scalar_dense",
    "is_nonzero",
    "nonzero",
    "masked_select",
    "unique",
    "_unique2",
    "unique_consecutive",
    "repeat_interleave",
}


class HostSyncs(TorchDispatchMode):
    """`with HostSyncs() as syncs: ...`, then `syncs.count`, `syncs.by_op` and `syncs.where` (the
    innermost project or diffusers frame of each)."""

    def __init__(self):
        super().__init__()
        self.by_op: Counter[str] = Counter()
        self.where: Counter[str] = Counter()

    @property
    def count(self) -> int:
        return sum(self.by_op.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNCING and not (name == "repeat_interleave" and "output_size" in (kwargs or {})):
            self.by_op[name] += 1
            self.where[_caller()] += 1
        return func(*args, **(kwargs or {}))


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "magicpose" in frame.filename or "diffusers" in frame.filename:
            return f"{frame.filename.split('site-packages/')[-1].split('src/')[-1]}:{frame.lineno} {frame.line}"
    return "?"


def count_host_syncs(fn) -> HostSyncs:
    with torch.no_grad(), HostSyncs() as syncs:
        fn()
    return syncs
