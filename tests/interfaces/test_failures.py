"""How every command ends when something goes wrong: one line, the right exit code, no traceback, nothing left."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from magicpose.errors import InputError
from magicpose.interfaces import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (InputError("--size must be at least 64"), "--size must be at least 64"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/out.mp4"),
            "no space left on the device writing /data/out.mp4",
        ),
        (PermissionError(errno.EACCES, "Permission denied", "/root/x.mp4"), "permission denied: /root/x.mp4"),
        (MemoryError(), "out of memory"),
        (type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory"), "--frame-chunk"),
        (type("DecompressionBombError", (Exception,), {})("Image size exceeds limit"), "too large to decode"),
    ],
)
def test_anticipated_failures_have_a_message(error, words):
    assert words in cli.failure_message(error)


def test_a_bug_keeps_its_traceback():
    assert cli.failure_message(KeyError("x")) is None
    assert cli.failure_message(OSError(errno.EIO, "I/O error")) is None


def _failing_command(monkeypatch, error):
    """`pose render`, parsed as usual, whose run raises `error`."""

    def run(args):
        raise error

    original = cli.build_parser

    def build():
        parser = original()
        parse = parser.parse_known_args

        def parse_known_args(argv):
            args, extra = parse(argv)
            args.func = run
            return args, extra

        parser.parse_known_args = parse_known_args
        return parser

    monkeypatch.setattr(cli, "build_parser", build)


def test_an_anticipated_failure_exits_2_with_one_line(monkeypatch, capsys):
    _failing_command(monkeypatch, OSError(errno.ENOSPC, "No space left on device", "out.mp4"))
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    assert cli.main(["pose", "render", "x.json", "--out", "y.mp4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left" in err and "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch):
    _failing_command(monkeypatch, InputError("bad"))
    with pytest.raises(InputError):
        cli.main(["--debug", "pose", "render", "x.json", "--out", "y.mp4"])
    monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")
    with pytest.raises(InputError):
        cli.main(["pose", "render", "x.json", "--out", "y.mp4"])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_ends_with_one_line_and_leaves_nothing(tmp_path, stop):
    out = tmp_path / "demo.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop(cli.DEBUG_VARIABLE, None)
    command = [sys.executable, "-m", "magicpose.interfaces.cli", "demo", "--out", str(out), "--steps", "50"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # stop it while it denoises (the progress bar is on stderr); 50 steps take far longer than this wait
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline and "it/s" not in seen and "s/it" not in seen:
        seen += process.stderr.read1(256).decode(errors="replace")
    process.send_signal(stop)
    _, rest = process.communicate(timeout=120)
    err = seen + rest.decode(errors="replace")
    assert process.returncode == 128 + stop, err[-2000:]
    assert "Traceback" not in err and "interrupted; nothing half-written was left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no temporary file
