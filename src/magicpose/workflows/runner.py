"""One runner for many independent items: `animate --jobs` (jobs) and `evaluate --tiktok` (test videos).

    items ─ plan (an item whose outputs exist is done: skipped, so a rerun resumes) ─ shard (process i:
    pending items i, i+N, ...) ─ run this process's share with one model load ─ part files beside the
    report ─ process 0 merges every process's results, in item order, and reports

Outputs are written atomically by the commands, so an output that exists is whole. Under `torchrun` /
`accelerate launch` the processes meet through `accelerate.PartialState`; a plain process needs no
launcher. An item that fails for an anticipated reason (`errors.failure_message`: bad input, no space,
out of memory...) is a "failed" row and the others go on; so is a bug, unless the user asked for
tracebacks (`--debug`, MAGICPOSE_DEBUG=1): then it is raised with its traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from magicpose.errors import InputError, failure_message
from magicpose.files import atomic_path

Item = TypeVar("Item")
Row = TypeVar("Row")  # a dataclass with status, seconds, message and process fields


@dataclass
class Processes:
    """This process's place among those launched together (one, when not launched by a launcher)."""

    index: int = 0
    count: int = 1
    device: object = None
    state: object = None

    @property
    def main(self) -> bool:
        return self.index == 0

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def launched(device: str = "auto") -> tuple[Processes, str]:
    """This process's place, and its device for the command's --device `device` ("auto", "cpu",
    "cuda:1"...): its own GPU when launched as several processes with "auto".

    `accelerate.PartialState` when launched as several processes (gloo on the CPU), else one process.
    Barriers wait for days: a process waits for the slowest one's share of the items."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes(), device
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if not cpu and torch.cuda.is_available() and local > torch.cuda.device_count():
        raise InputError(
            f"{local} processes on this machine but {torch.cuda.device_count()} GPU(s): launch at most "
            "one process per GPU, or pass --device cpu"
        )
    state = PartialState(cpu=cpu, timeout=timedelta(days=7))
    processes = Processes(state.process_index, state.num_processes, state.device, state)
    return processes, str(state.device) if device == "auto" else device


def shard(pending: Sequence[Item], index: int, count: int) -> list[Item]:
    """Process `index` of `count` takes pending items index, index + count, ...: every item once."""
    return list(pending[index::count])


def part_path(report: Path, index: int) -> Path:
    """Where process `index` leaves its results (kept after the merge: what each process did)."""
    return report.with_name(f"{report.name}.rank{index}.json")


@dataclass
class Work(Generic[Item, Row]):
    """What a command tells the runner about its items; the runner decides the rest."""

    command: str  # "animate": messages read `magicpose animate: job 3 (line 4) failed: ...`
    unit: str  # "job", "video": the progress bar's unit and the part files' key (plural)
    row_type: type  # the Row dataclass (read back from the part files)
    label: Callable[[Item], str]  # "job 3 (line 4)"
    done: Callable[[Item], bool]  # its outputs exist whole (False for every item under --force)
    skipped: Callable[[Item], Row]  # the row of a done item
    failed: Callable[[Item, str], Row]  # the row of an item that raised, with the message
    order: Callable[[Row], Any]  # sort key of the merged rows (the items' order)
    # start(items) -> a context whose value runs one item (item -> its "done" row); entered once per
    # process, and only when the process has items: where the model is loaded, once.
    start: Callable[[list[Item]], AbstractContextManager[Callable[[Item], Row]]]


def run_shared(work: Work, items: Sequence[Item], report: Path, processes: Processes, debug: bool = False) -> list:
    """Plan, shard, run this process's share, and gather: every item's row on process 0 (in item order),
    this process's own elsewhere.

    `processes`: from `launched`. `report`: the report file the command writes afterwards; with several
    processes the part files go beside it. `debug`: a bug raises instead of failing its item."""
    done = [work.done(item) for item in items]
    pending = [item for item, skip in zip(items, done) if not skip]
    mine = shard(pending, processes.index, processes.count)
    processes.wait()  # every process has planned before any writes an output
    rows = [work.skipped(item) for item, skip in zip(items, done) if skip] if processes.main else []
    if mine:
        with work.start(mine) as run_one:
            rows += run_items(work, mine, run_one, processes, debug)
    return gather(work, rows, processes, report)


def run_items(work: Work, items: list[Item], run_one: Callable, processes: Processes, debug: bool) -> list:
    """Each item in turn; one that raises is a failed row (or, a bug under --debug, raised) and the rest go on."""
    desc = (
        f"{work.unit}s" if processes.count == 1 else f"{work.unit}s (process {processes.index + 1}/{processes.count})"
    )
    rows = []
    for item in tqdm(items, desc=desc, unit=work.unit, dynamic_ncols=True):
        start = time.perf_counter()
        try:
            row = run_one(item)
        except Exception as error:  # noqa: BLE001 (one bad item must not stop the others)
            message = failure_message(error)
            if message is None and debug:
                raise  # a bug, and the user asked for its traceback
            message = message or f"{type(error).__name__}: {error}"
            tqdm.write(f"magicpose {work.command}: {work.label(item)} failed: {message}", file=sys.stderr)
            row = work.failed(item, message)
        rows.append(replace(row, seconds=round(time.perf_counter() - start, 3), process=processes.index))
    return rows


def gather(work: Work, rows: list, processes: Processes, report: Path) -> list:
    """Every process's rows on process 0, in item order (through part files beside the report); the
    other processes keep their own."""
    if processes.count > 1:
        part = {"processes": processes.count, "process": processes.index, f"{work.unit}s": [asdict(r) for r in rows]}
        with atomic_path(part_path(report, processes.index)) as temporary:
            temporary.write_text(json.dumps(part, indent=2) + "\n")
        processes.wait()
        if not processes.main:
            return rows
        rows = [
            work.row_type(**row)
            for index in range(processes.count)
            for row in json.loads(part_path(report, index).read_text())[f"{work.unit}s"]
        ]
    return sorted(rows, key=work.order)
