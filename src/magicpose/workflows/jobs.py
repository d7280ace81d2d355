"""Many animate jobs from one YAML or CSV file: read and check the whole file (errors name the job and
its line), and say which jobs are done already. `workflows.runner` plans, shares the pending jobs among
processes, runs them and gathers the results, as it does for `evaluate --tiktok`'s videos.

Outputs are written atomically, so an output that exists is whole and a rerun resumes where a stopped
run left off.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from magicpose.errors import InputError
from magicpose.files import check_output
from magicpose.workflows.report import JobResult

REQUIRED = ("reference", "driving", "out")


class JobsFileError(InputError):
    """The jobs file cannot be run as it is (nothing is run): unreadable, or a job is malformed."""


@dataclass
class Job:
    index: int  # 1-based, in file order
    where: str  # "line 4" of the file
    reference: Path
    driving: Path
    out: Path
    grid: bool  # also OUT_grid.mp4
    overrides: dict = field(default_factory=dict)  # the job's own options, by argparse dest
    error: str | None = None  # a bad option value: the job is reported failed, never run

    @property
    def label(self) -> str:
        return f"job {self.index} ({self.where})"

    @property
    def outputs(self) -> list[Path]:
        return [self.out, self.out.with_name(self.out.stem + "_grid.mp4")] if self.grid else [self.out]


def normalise(key) -> str:
    return str(key).strip().lstrip("-").replace("-", "_").lower()


def parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n"):
        return False
    raise ValueError("expected true or false")


def convert(action: argparse.Action, inverted: bool, value):
    """A jobs-file value as the command line's option would have parsed it."""
    if action.nargs == 0:  # --grid, --[no-]align, ...
        return parse_bool(value) != inverted
    if isinstance(action.nargs, int):
        items = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
        if len(items) != action.nargs:
            raise ValueError(f"expected {action.nargs} values")
        return [convert_one(action, item) for item in items]
    return convert_one(action, value)


def convert_one(action: argparse.Action, value):
    result = action.type(str(value)) if action.type else str(value)
    if action.choices and result not in action.choices:
        raise ValueError(f"choose from {', '.join(map(str, action.choices))}")
    return result


def option_names(actions: Iterable[argparse.Action]) -> dict[str, tuple[argparse.Action, bool]]:
    """Every name a key may use for an option: its dest and its flags (`max_frames`, `max-frames`,
    `--max-frames`); `no_align` and the like are the inverted boolean."""
    names = {}
    for action in actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names[normalise(action.dest)] = (action, False)
        for flag in action.option_strings:
            inverted = isinstance(action, argparse.BooleanOptionalAction) and flag.startswith("--no-")
            names[normalise(flag)] = (action, inverted)
    return names


def read_rows(path: Path) -> list[tuple[str, dict]]:
    """(where, mapping) for each job of a YAML list (or `jobs:` list) or a CSV file with a header row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise JobsFileError(f"cannot read the jobs file {path}: {error}") from error
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = []
        for row in reader:
            if None in row:
                raise JobsFileError(f"{path}, line {reader.line_num}: more cells than columns in the header")
            rows.append((f"line {reader.line_num}", {key: value for key, value in row.items() if key is not None}))
        return rows
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise JobsFileError(f"the jobs file {path} must be .yaml, .yml or .csv")

    try:
        node, data = yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise JobsFileError(f"cannot read the jobs file {path}: {error}") from error
    if isinstance(data, dict) and list(data) == ["jobs"]:
        node, data = node.value[0][1], data["jobs"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise JobsFileError(
            f"{path} must hold a list of jobs (or `jobs:` and a list), each a mapping with reference, driving and out"
        )
    rows = []
    for item_node, item in zip(node.value, data):
        where = f"line {item_node.start_mark.line + 1}"
        if not isinstance(item, dict):
            raise JobsFileError(f"{path}, {where}: a job must be a mapping (reference: ..., driving: ..., out: ...)")
        rows.append((where, item))
    return rows


def read_jobs(
    path: str | os.PathLike,
    job_actions: Iterable[argparse.Action],
    global_actions: Iterable[argparse.Action],
    defaults: Mapping | None = None,
) -> list[Job]:
    """Read and check a whole jobs file. Structural problems (a missing or unknown key, an output twice,
    an output that is an input) raise `JobsFileError` naming each job and line; a bad option value only
    marks its job failed. Relative paths are relative to the file's folder; `defaults` (the command
    line's reference, driving and grid, relative to the working folder) fill what a job leaves out."""
    path = Path(path)
    if not path.is_file():
        raise JobsFileError(f"the jobs file {path} does not exist")
    folder, defaults = path.resolve().parent, dict(defaults or {})
    names = option_names(job_actions)
    fixed = {normalise(name) for name in option_names(global_actions)}
    jobs, errors = [], []
    for index, (where, row) in enumerate(read_rows(path), start=1):
        label, given, overrides, bad = f"job {index} ({where})", {}, {}, None
        for key, value in row.items():
            name = normalise(key)
            if name in given or (name in names and names[name][0].dest in overrides):
                errors.append(f"{label}: {key!r} is given twice")
            elif name in REQUIRED:
                given[name] = (
                    None if value is None or str(value).strip() == "" else Path(str(value).strip()).expanduser()
                )
            elif name in fixed:
                errors.append(
                    f"{label}: {key!r} is a weights/hardware option, the same for every job (one model "
                    f"load): pass --{name.replace('_', '-')} on the command line"
                )
            elif name not in names:
                errors.append(
                    f"{label}: unknown key {key!r}; a job has reference, driving, out and animate options "
                    "(steps, guidance, seed, size, max_frames, fps, grid, align, ...)"
                )
            elif value is not None and str(value).strip() != "":
                action, inverted = names[name]
                try:
                    overrides[action.dest] = convert(
                        action, inverted, value.strip() if isinstance(value, str) else value
                    )
                except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
                    bad = bad or f"bad value {key} = {value!r}: {error}"
                    overrides[action.dest] = None
        paths = {key: Path(os.path.abspath(folder / given[key])) if given.get(key) else None for key in REQUIRED}
        for key in ("reference", "driving"):
            if paths[key] is None and defaults.get(key):
                paths[key] = Path(os.path.abspath(Path(defaults[key]).expanduser()))
        missing = [key for key in REQUIRED if paths[key] is None]
        if missing:
            errors.append(
                f"{label}: no {', '.join(missing)} (every job needs reference, driving and out; "
                "--reference or --driving on the command line serve every job that has none)"
            )
            continue
        grid = overrides.get("grid") if overrides.get("grid") is not None else bool(defaults.get("grid"))
        overrides = {key: value for key, value in overrides.items() if value is not None}
        jobs.append(Job(index, where, *(paths[key] for key in REQUIRED), grid, overrides, bad))
    errors += clashes(jobs, path)
    if not jobs and not errors:
        errors.append("it holds no jobs")
    if errors:
        raise JobsFileError(f"the jobs file {path} cannot run as it is (nothing was run):\n  " + "\n  ".join(errors))
    return jobs


def clashes(jobs: list[Job], jobs_file: Path) -> list[str]:
    """An output written twice, over an input of any job or the jobs file, or that could not be written
    (`magicpose.files.check_output`: a folder, write-protected, in a folder that takes no file)."""
    inputs = {jobs_file.resolve(): "the jobs file"}
    for job in jobs:
        for key in ("reference", "driving"):
            inputs.setdefault(getattr(job, key).resolve(), f"job {job.index}'s {key}")
    errors, owners = [], {}
    for job in jobs:
        for output in job.outputs:
            resolved = output.resolve()
            try:
                check_output(output, "the output", (".mp4",))
            except InputError as error:
                errors.append(f"{job.label}: {error}")
                continue
            if resolved in inputs:
                errors.append(f"{job.label}: the output {output} is {inputs[resolved]}; choose another out")
            elif resolved in owners:
                errors.append(
                    f"{job.label}: the output {output} is also {owners[resolved]}'s; give each job its own out"
                )
            owners.setdefault(resolved, f"job {job.index}")
    return errors


def is_done(job: Job, force: bool = False) -> bool:
    """A job whose outputs all exist is done (they are written atomically); one with a bad value never is."""
    return not force and job.error is None and all(path.is_file() for path in job.outputs)


def skipped_result(job: Job) -> JobResult:
    return JobResult(job.index, job.where, str(job.out), "skipped", message="output exists; --force redoes it")


def failed_result(job: Job, message: str) -> JobResult:
    return JobResult(job.index, job.where, str(job.out), "failed", message=message)
