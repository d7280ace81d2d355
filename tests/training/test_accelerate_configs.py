"""configs/accelerate: each file is one that `accelerate launch` reads, with the fields a launch needs; the
ones a CPU can run train a tiny stage on 2 processes over gloo through `accelerate launch` itself
(multi_gpu_8.yaml with --num_processes 2; multi_node.yaml as 2 "machines" x 1 process on this one), with
an effective batch of batch_size x gradient_accumulation_steps x processes and the stage config's
mixed precision, whatever the accelerate file says.

On a machine without CUDA the runs need `train.cpu=true`: without it every process trains alone
(world size 1) into the same folder, and `accelerate launch --cpu` starts one process only.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import ComputeEnvironment, DistributedType
from accelerate.utils.launch import prepare_multi_gpu_env
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.training.helpers import ROOT, tiny_config

ACCELERATE = ROOT / "configs" / "accelerate"
# file -> (distributed type, processes in all, machines)
SHIPPED = {
    "single_gpu.yaml": (DistributedType.NO, 1, 1),
    "multi_gpu_8.yaml": (DistributedType.MULTI_GPU, 8, 1),
    "multi_node.yaml": (DistributedType.MULTI_GPU, 16, 2),
}
BATCH, ACCUMULATION, PROCESSES = 2, 2, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_args(name: str, *options: str):
    """What `accelerate launch --config_file configs/accelerate/NAME OPTIONS -m magicpose.interfaces.cli
    train x.yaml` resolves to, before it starts anything."""
    argv = ["--config_file", str(ACCELERATE / name), *options, "-m", "magicpose.interfaces.cli", "train", "x.yaml"]
    return _validate_launch_command(launch_command_parser().parse_args(argv))[0]


def test_the_shipped_accelerate_configs_are_these():
    """DeepSpeed and FSDP are left out (docs/training.md says why): a new file needs its checks here."""
    assert sorted(path.name for path in ACCELERATE.iterdir()) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_config_is_read_by_accelerate_with_what_a_launch_needs(name):
    distributed_type, processes, machines = SHIPPED[name]
    config = load_config_from_file(str(ACCELERATE / name))
    assert config.compute_environment == ComputeEnvironment.LOCAL_MACHINE
    assert (config.distributed_type, config.num_processes, config.num_machines) == (
        distributed_type,
        processes,
        machines,
    )
    assert config.mixed_precision == "bf16" and not config.use_cpu  # as configs/sd15 (which is what applies)
    assert config.machine_rank == 0 and config.rdzv_backend == "static"

    args = _launch_args(name, "--main_process_port", str(_free_port()))
    assert args.num_processes == processes and args.multi_gpu == (processes > 1)
    assert args.mixed_precision == "bf16"
    if processes > 1:  # what torchrun is handed on each machine
        env = prepare_multi_gpu_env(args)
        assert args.nproc_per_node == str(processes // machines) == "8"
        assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
        if machines > 1:
            assert args.nnodes == "2" and args.node_rank == 0
            assert args.rdzv_endpoint == f"{config.main_process_ip}:{args.main_process_port}"


def test_the_multi_node_config_marks_what_each_user_fills_in():
    lines = (ACCELERATE / "multi_node.yaml").read_text().splitlines()
    for key in ("main_process_ip", "main_process_port", "machine_rank"):
        line = next(line for line in lines if line.startswith(f"{key}:"))
        assert "# FILL IN" in line, line
    raw = yaml.safe_load("\n".join(lines))
    assert raw["main_process_ip"] and isinstance(raw["main_process_port"], int)
    # a machine's own rank on the command line wins over the file's
    args = _launch_args("multi_node.yaml", "--machine_rank", "1", "--main_process_ip", "127.0.0.1")
    assert args.machine_rank == 1 and args.main_process_ip == "127.0.0.1"


def _tiny_run(tmp_path, name: str):
    """A tiny stage-2 config file (puppet preset, 32x32) for two CPU processes, and its output folder."""
    out = tmp_path / name
    config = tiny_config(
        "pose",
        out,
        train={"max_steps": 2, "batch_size": BATCH, "gradient_accumulation_steps": ACCUMULATION, "cpu": True},
        output={"checkpoint_every": 2, "validate_every": 0, "log_every": 1},
    )
    assert config.train.mixed_precision == "no"  # the accelerate files say bf16
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(config.to_dict()))))  # tuples as lists
    return path, out


def _accelerate(config_file: str, run_config, *options: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file", config_file]
    command += [*options, "-m", "magicpose.interfaces.cli", "train", str(run_config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(*launchers: subprocess.Popen) -> str:
    outputs = []
    for launcher in launchers:
        stdout, stderr = launcher.communicate(timeout=300)
        assert launcher.returncode == 0, stderr[-3000:]
        outputs.append(stdout)
    return "".join(outputs)


def _logged(out, tag: str) -> list[float]:
    events = EventAccumulator(str(out / "logs" / "pose"))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def _check_two_ranks_trained(out, stdout: str) -> list[float]:
    """Both ranks wrote their part of the checkpoint, rank 0 alone exported, the effective batch was
    batch x accumulation x 2 in the checkpoint and in the logged throughput; returns the logged losses."""
    checkpoint = out / "checkpoints" / "step-000002"
    state = torch.load(checkpoint / "state.pt", weights_only=False)
    assert state["world_size"] == PROCESSES and state["step"] == 2
    assert sorted(path.name for path in checkpoint.glob("rng-rank*.pt")) == ["rng-rank0.pt", "rng-rank1.pt"]
    assert stdout.count("exported pose to") == 1 and (out / "export" / "model_index.json").is_file()
    train = state["config"]["train"]
    assert train["batch_size"] * train["gradient_accumulation_steps"] * state["world_size"] == 8
    # samples_per_second is the effective batch over seconds_per_step (float32 in the event file)
    throughput = zip(_logged(out, "samples_per_second"), _logged(out, "seconds_per_step"), strict=True)
    effective = [samples_per_second * seconds for samples_per_second, seconds in throughput]
    assert len(effective) == 2 and all(abs(value - BATCH * ACCUMULATION * PROCESSES) < 1e-3 for value in effective)
    return _logged(out, "loss")


@pytest.mark.slow
def test_eight_gpu_and_multi_node_configs_train_on_two_cpu_processes_with_the_stage_configs_precision(tmp_path):
    # multi_gpu_8.yaml on 2 processes: accelerate starts torchrun, the trainer's train.cpu joins them over gloo
    one_machine, one_machine_out = _tiny_run(tmp_path, "one_machine")
    launcher = _accelerate(
        str(ACCELERATE / "multi_gpu_8.yaml"), one_machine, "--num_processes", "2", "--main_process_port", "0"
    )
    one_machine_losses = _check_two_ranks_trained(one_machine_out, _finished(launcher))

    # multi_node.yaml as 2 machines x 1 process: one launcher per "machine", each with its own rank
    two_machines, two_machines_out = _tiny_run(tmp_path, "two_machines")
    port = str(_free_port())
    launchers = [
        _accelerate(
            str(ACCELERATE / "multi_node.yaml"),
            two_machines,
            "--num_processes",
            "2",
            "--machine_rank",
            str(rank),
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            port,
            "--mixed_precision",
            "no",
        )
        for rank in range(2)
    ]
    two_machines_losses = _check_two_ranks_trained(two_machines_out, _finished(*launchers))

    # The same two ranks on the same samples: the accelerate file's bf16 (first run) changed nothing
    # against --mixed_precision no (second run): train.mixed_precision (no) is what ran. With
    # train.mixed_precision=bf16 the first loss moves in its fifth digit.
    assert one_machine_losses == two_machines_losses and len(one_machine_losses) == 2
