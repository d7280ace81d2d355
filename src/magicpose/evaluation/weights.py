"""Where each metric network's weights come from, and loading them without renaming a key.

Every file is used exactly as its authors publish it; the networks in this package name their
modules so that the published state dict loads with `strict` key checking. Nothing is downloaded:
the user puts the files in one folder (``--weights-dir``), see docs/evaluation.md.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from magicpose.errors import InputError, MissingWeightsError

DEFAULT_WEIGHTS_DIR = Path(os.environ.get("MAGICPOSE_METRIC_WEIGHTS", "~/.cache/magicpose/metrics")).expanduser()


@dataclass(frozen=True)
class WeightFile:
    """One published weight file: its name inside the weights folder and where to get it."""

    name: str
    published_at: str
    what: str


WEIGHT_FILES: dict[str, WeightFile] = {
    "inception": WeightFile(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "pytorch-fid's port of the TensorFlow FID Inception (FID)",
    ),
    "lpips_vgg": WeightFile(
        "lpips/vgg.pth",
        "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth "
        "(also inside the `lpips` pip package: lpips/weights/v0.1/vgg.pth)",
        "LPIPS v0.1 linear layers for VGG-16",
    ),
    "lpips_alex": WeightFile(
        "lpips/alex.pth",
        "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth "
        "(also inside the `lpips` pip package: lpips/weights/v0.1/alex.pth)",
        "LPIPS v0.1 linear layers for AlexNet",
    ),
    "vgg16": WeightFile(
        "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "torchvision's ImageNet VGG-16 (the LPIPS VGG trunk)",
    ),
    "alexnet": WeightFile(
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "torchvision's ImageNet AlexNet (the LPIPS AlexNet trunk)",
    ),
    "resnet3d": WeightFile(
        "resnet-50-kinetics.pth",
        "kenshohara/3D-ResNets-PyTorch (the Kinetics-400 ResNet-50 linked from its README; "
        "DisCo's FID-VID loads the same file from eval_fvd/resnet-50-kinetics.pth)",
        "3D ResNet-50 trained on Kinetics-400 (FID-VID)",
    ),
    "i3d": WeightFile(
        "i3d_pretrained_400.pt",
        "the Kinetics-400 I3D in the piergiaj/pytorch-i3d layout, as distributed with TATS and DisCo "
        "(eval_fvd/i3d_pretrained_400.pt)",
        "I3D (Inception-v1 3D) trained on Kinetics-400 (FVD)",
    ),
    "adaface": WeightFile(
        "adaface_ir101_webface12m.ckpt",
        "https://github.com/mk-minchul/AdaFace (README, 'Pretrained Models': IR-101, WebFace12M)",
        "AdaFace IR-101 face recognition network (Face-Cos)",
    ),
}


def weight_path(weights_dir: str | os.PathLike, key: str) -> Path:
    """Return the path of the weight file `key` inside `weights_dir`, or raise naming the file and its source."""
    file = WEIGHT_FILES[key]
    path = Path(weights_dir).expanduser() / file.name
    if not path.is_file():
        raise MissingWeightsError(
            f"{file.what} needs {path}, which does not exist; download it from {file.published_at} "
            f"and put it there (or point --weights-dir at the folder that holds it)"
        )
    return path


def missing_weight_files(weights_dir: str | os.PathLike, keys: list[str]) -> list[str]:
    """The names of the files among `keys` that are not in `weights_dir`."""
    return [
        WEIGHT_FILES[key].name
        for key in keys
        if not (Path(weights_dir).expanduser() / WEIGHT_FILES[key].name).is_file()
    ]


class LightningCallbackKey:
    """Stands in for the Lightning callback class that AdaFace's checkpoint (Lightning 1.4) uses as the key
    of its callback states: only the name is read, nothing is called, and Lightning need not be installed."""


# Everything beyond tensors and plain containers that the published files of WEIGHT_FILES hold, each mapped
# to an inert stand-in: torch's weights-only unpickler refuses every other global, so no file runs code.
PUBLISHED_GLOBALS = [(LightningCallbackKey, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint")]


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """Load a checkpoint on the CPU with torch's weights-only unpickler and nothing else (no fallback).

    A file that holds any other Python object is refused with its name: unpickling it could run code.
    """
    try:
        with torch.serialization.safe_globals(PUBLISHED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL (\S+)", str(error))
        raise InputError(
            f"{path} holds Python objects beyond weights ({found.group(1) if found else 'an unknown global'}), "
            "which is not what the published file holds; it was not loaded, since unpickling it could run code. "
            "Download the published file again (docs/evaluation.md, 'Where to put the metric weights')"
        ) from None
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file: torch raises several kinds
        raise InputError(f"cannot read {path} as a PyTorch checkpoint ({error}); download it again") from error


def load_exact(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: Path | str) -> nn.Module:
    """Load `state_dict` into `module`, requiring every key to match (BatchNorm step counters excepted).

    Files saved by older PyTorch versions lack `num_batches_tracked`; it is not used in eval mode.
    """
    expected = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k for k in state_dict if not k.endswith("num_batches_tracked")}
    if expected != given:
        missing, unexpected = sorted(expected - given), sorted(given - expected)
        raise InputError(
            f"{source} does not have the expected layout: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; is it the published file?"
        )
    try:
        module.load_state_dict(dict(state_dict), strict=False)
    except RuntimeError as error:
        raise InputError(f"{source}: tensor shapes do not match the network ({error})") from error
    return module.eval()
