import signal

import pytest
import torch
import yaml
from safetensors.torch import load_file

from magicpose.interfaces.cli import main
from magicpose.training import trainer
from magicpose.training.checkpointing import TrainingDiverged
from magicpose.training.stages import MagicPoseStage
from magicpose.training.trainer import train
from tests.training.helpers import tiny_config

K = 2
# Stage 2 with everything that draws random numbers or keeps state: augmentation, guidance dropout,
# random crops, a warm-up LR schedule, gradient accumulation.
OPTIONS = dict(
    train={
        "max_steps": 2 * K,
        "image_guidance_dropout": 0.3,
        "lr_warmup_steps": 3,
        "lr_scheduler": "cosine",
        "gradient_accumulation_steps": 2,
        "batch_size": 1,
    },
    data={"crop": "random", "face_mask_probability": 0.5, "hand_mask_probability": 0.5},
    output={"checkpoint_every": K, "validate_every": 0},
)


def _final(out):
    return load_file(out / "checkpoints" / f"step-{2 * K:06d}" / "trainable.safetensors")


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_a_straight_run(tmp_path):
    train(tiny_config("pose", tmp_path / "straight", **OPTIONS))
    config = tiny_config("pose", tmp_path / "resumed", **OPTIONS)
    stopped = train(config, stop_after=K)
    assert stopped == tmp_path / "resumed" / "checkpoints" / f"step-{K:06d}" and (stopped / "state.pt").is_file()
    assert not (tmp_path / "resumed" / "export").exists()
    train(config, resume=True)
    straight, resumed = _final(tmp_path / "straight"), _final(tmp_path / "resumed")
    assert straight.keys() == resumed.keys() and len(straight) > 10
    assert max((straight[k] - resumed[k]).abs().max().item() for k in straight) <= 1e-6
    first = load_file(tmp_path / "straight" / "checkpoints" / f"step-{K:06d}" / "trainable.safetensors")
    assert any(not torch.equal(first[k], straight[k]) for k in first)  # the second half did train


@pytest.mark.slow
def test_stopping_between_checkpoints_checkpoints_the_step_it_stops_at(tmp_path):
    config = tiny_config("vae", tmp_path, train={"max_steps": 5}, output={"checkpoint_every": 4, "validate_every": 0})
    stopped = train(config, stop_after=1)
    assert stopped == tmp_path / "checkpoints" / "step-000001" and (stopped / "trainable.safetensors").is_file()
    assert not (tmp_path / "export").exists()


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_needs_resume(tmp_path):
    from magicpose.errors import InputError

    config = tiny_config("appearance", tmp_path, train={"max_steps": 1}, output={"validate_every": 0})
    train(config)
    with pytest.raises(InputError, match="--resume"):
        train(config)


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    forward = MagicPoseStage.forward

    def poisoned(self, batch, generator):
        calls["n"] += 1
        loss = forward(self, batch, generator)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(MagicPoseStage, "forward", poisoned)
    config = tiny_config("appearance", tmp_path, train={"max_steps": 4}, output={"validate_every": 0})
    with pytest.raises(TrainingDiverged, match=r"nan at step 3.*step-000002"):
        train(config)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002"]
    assert not (tmp_path / "export").exists()


@pytest.mark.slow
def test_a_spent_time_budget_checkpoints_and_exports_early(tmp_path):
    config = tiny_config(
        "controlnet",
        tmp_path,
        train={"max_steps": 50, "max_minutes": 0.0},
        output={"checkpoint_every": 100, "validate_every": 0},
    )
    export = train(config)
    assert (export / "pose_control" / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000001"]


@pytest.mark.slow
def test_ema_is_checkpointed_resumed_exactly_and_is_what_the_run_exports(tmp_path):
    from magicpose.training.stages import build_stage

    options = {**OPTIONS, "train": {**OPTIONS["train"], "ema_decay": 0.9}}
    straight_export = train(tiny_config("pose", tmp_path / "straight", **options))
    config = tiny_config("pose", tmp_path / "resumed", **options)
    train(config, stop_after=K)
    train(config, resume=True)
    ema_file = f"checkpoints/step-{2 * K:06d}/ema.pt"
    straight = torch.load(tmp_path / "straight" / ema_file, weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / ema_file, weights_only=False)
    assert straight["optimization_step"] == resumed["optimization_step"] == 2 * K
    assert max((a - b).abs().max().item() for a, b in zip(straight["shadow_params"], resumed["shadow_params"])) <= 1e-6

    names = [name for name, p in build_stage(config).named_parameters() if p.requires_grad]
    assert len(names) == len(straight["shadow_params"])
    average = dict(zip(names, straight["shadow_params"]))
    trained = _final(tmp_path / "straight")
    exported = load_file(straight_export / "pose_control" / "diffusion_pytorch_model.safetensors")
    prefix = "model.pose_control."
    pose_names = [name for name in names if name.startswith(prefix)]
    assert pose_names and all(torch.equal(exported[n.removeprefix(prefix)], average[n]) for n in pose_names)
    assert any(not torch.equal(average[n], trained[n]) for n in pose_names)  # the average is not the last weights


def test_ema_decay_outside_0_1_is_an_error(tmp_path):
    from magicpose.errors import InputError

    with pytest.raises(InputError, match="ema_decay"):
        tiny_config("pose", tmp_path, train={"ema_decay": 1.0})
    with pytest.raises(InputError, match=r"shared_noise must lie in \[0, 1\]"):
        tiny_config("motion", tmp_path, train={"shared_noise": 1.5})


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_checkpoints_the_finished_step_and_the_resume_is_exact(tmp_path, monkeypatch, capsys, stop):
    """Ctrl-C or SIGTERM mid-run: the step under way finishes, its checkpoint is saved, the command says how to
    continue, and continuing gives the straight run's weights."""
    train(tiny_config("pose", tmp_path / "straight", **OPTIONS))
    config = tiny_config(
        "pose", tmp_path / "stopped", **{**OPTIONS, "output": {**OPTIONS["output"], "checkpoint_every": 100}}
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    real_step = trainer.optimizer_step

    def step_then_signal(run, data):
        result = real_step(run, data)
        if run.step == 1:
            signal.raise_signal(stop)  # arrives mid-run, as a scheduler's or the user's would
        return result

    monkeypatch.setattr(trainer, "optimizer_step", step_then_signal)
    assert main(["train", str(tmp_path / "config.yaml")]) == 128 + stop
    err = capsys.readouterr().err
    checkpoint = tmp_path / "stopped" / "checkpoints" / f"step-{1:06d}"
    assert (checkpoint / "state.pt").is_file() and not (tmp_path / "stopped" / "export").exists()
    assert f"interrupted after step 1; saved {checkpoint}" in err
    assert f"magicpose train {tmp_path / 'config.yaml'} --resume" in err and "Traceback" not in err
    assert signal.getsignal(stop) in (signal.default_int_handler, signal.SIG_DFL)  # the handlers are put back
    monkeypatch.setattr(trainer, "optimizer_step", real_step)
    assert main(["train", str(tmp_path / "config.yaml"), "--resume"]) == 0
    straight = _final(tmp_path / "straight")
    resumed = _final(tmp_path / "stopped")
    assert max((straight[k] - resumed[k]).abs().max().item() for k in straight) <= 1e-6


@pytest.mark.slow
def test_resuming_with_changed_settings_names_them(tmp_path):
    config = tiny_config("pose", tmp_path / "run", **OPTIONS)
    train(config, stop_after=K)
    changed = tiny_config(
        "pose",
        tmp_path / "run",
        **{**OPTIONS, "train": {**OPTIONS["train"], "batch_size": 2, "learning_rate": 5e-4, "max_steps": 2 * K + 1}},
    )
    with pytest.warns(UserWarning, match="differ from the checkpoint's") as caught:
        train(changed, resume=True)
    message = str(caught[0].message)
    assert "train.batch_size: 1 -> 2" in message
    assert "train.learning_rate: 0.001 -> 0.0005 (the checkpoint's value stays" in message
    assert "max_steps" not in message  # running longer is what resuming is for
