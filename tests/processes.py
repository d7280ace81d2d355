"""Launching a command as 2 CPU processes over gloo, as `torchrun` does on a GPU machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*arguments: str, processes: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node N ARGUMENTS` (a script, or `-m module ...`) on this host, one thread each."""
    # this checkout's package (not another one a venv may have installed in editable mode) and its tests
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
