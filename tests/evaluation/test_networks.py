"""Each metric network: random weights saved in the published file layout, loaded by the real loader."""

import numpy as np
import pytest
import torch

from magicpose.errors import InputError, MissingWeightsError
from magicpose.evaluation import adaface, i3d, inception, lpips, resnet3d
from magicpose.evaluation.fid import frechet_distance_of_features
from magicpose.evaluation.weights import WEIGHT_FILES
from tests.evaluation.evaluation_helpers import randomize


def save(weights_dir, key, obj):
    path = weights_dir / WEIGHT_FILES[key].name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def noise_levels(x: torch.Tensor, sigmas=(0.05, 0.15, 0.4), low=0.0, high=1.0):
    generator = torch.Generator().manual_seed(7)
    return [(x + s * torch.randn(x.shape, generator=generator)).clamp(low, high) for s in sigmas]


def test_missing_file_names_it_and_its_source(tmp_path):
    with pytest.raises(MissingWeightsError) as error:
        inception.load_fid_inception(tmp_path)
    message = str(error.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message and "github.com/mseitzer/pytorch-fid" in message


def test_fid_inception_published_layout_and_features(tmp_path):
    source = randomize(inception.FIDInceptionV3(resize_to=None))
    state = source.state_dict()
    # Key names and shapes of pytorch-fid's file (torchvision Inception3 names, 1008-way TF classifier).
    assert state["fc.weight"].shape == (1008, 2048)
    assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert state["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert not any(k.startswith("AuxLogits") for k in state)
    # Files from old PyTorch versions have no BatchNorm step counters.
    save(tmp_path, "inception", {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})
    model = inception.load_fid_inception(tmp_path, resize_to=None)
    images = torch.rand(6, 3, 75, 75, generator=torch.Generator().manual_seed(0))
    features = model(images)
    assert features.shape == (6, 2048)
    assert torch.equal(features, source(images)) and torch.equal(features, model(images))
    assert frechet_distance_of_features(features.numpy(), model(images).numpy()) == pytest.approx(0, abs=1e-9)
    distances = [frechet_distance_of_features(features.numpy(), model(x).numpy()) for x in noise_levels(images)]
    assert distances == sorted(distances) and distances[0] > 0


def test_fid_inception_resizes_to_299_like_pytorch_fid():
    model = randomize(inception.FIDInceptionV3())
    assert model(torch.rand(1, 3, 40, 60)).shape == (1, 2048)


def test_wrong_layout_is_reported(tmp_path):
    state = randomize(inception.FIDInceptionV3()).state_dict()
    state["module.extra"] = state.pop("fc.bias")
    save(tmp_path, "inception", state)
    with pytest.raises(InputError, match="fc.bias"):
        inception.load_fid_inception(tmp_path)


@pytest.mark.parametrize(
    "net, trunk_key, linear_key", [("vgg", "vgg16", "lpips_vgg"), ("alex", "alexnet", "lpips_alex")]
)
def test_lpips_published_layouts(tmp_path, net, trunk_key, linear_key):
    source = randomize(lpips.LPIPS(net))
    # torchvision's file: `features.N.*` plus a classifier LPIPS does not use.
    trunk = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    trunk["classifier.0.weight"] = torch.zeros(4, 4)
    save(tmp_path, trunk_key, trunk)
    # The lpips package's file: `linK.model.1.weight`, shape (1, C, 1, 1).
    linear = {f"lin{i}.model.1.weight": layer.model[1].weight.detach().clone() for i, layer in enumerate(source.lins)}
    assert list(linear)[0] == "lin0.model.1.weight"
    save(tmp_path, linear_key, linear)
    model = lpips.load_lpips(tmp_path, net)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert torch.equal(model(x, x), torch.zeros(2))
    distances = [model(x, y).mean().item() for y in noise_levels(x, low=-1, high=1)]
    assert distances == sorted(distances) and distances[0] > 0
    assert torch.allclose(model(x, noise_levels(x)[0]), source(x, noise_levels(x)[0]))


def test_resnet3d_published_layout(tmp_path):
    source = randomize(resnet3d.ResNet3d((1, 1, 1, 1)))
    full_keys = resnet3d.ResNet3d().state_dict()
    assert full_keys["layer3.5.conv3.weight"].shape == (1024, 256, 1, 1, 1)
    assert full_keys["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1, 1)
    assert full_keys["fc.weight"].shape == (400, 2048)
    # kenshohara's file: {'arch', 'state_dict'} saved from DataParallel (`module.` prefix).
    save(tmp_path, "resnet3d", {"arch": "resnet-50", "state_dict": {f"module.{k}": v for k, v in full_keys.items()}})
    loaded = resnet3d.load_resnet3d(tmp_path)
    assert torch.equal(loaded.layer4[2].conv3.weight, full_keys["layer4.2.conv3.weight"])
    clips = torch.randn(3, 3, 16, 32, 32, generator=torch.Generator().manual_seed(2)) * 50
    features = source(clips)
    assert features.shape == (3, 2048) and torch.equal(features, source(clips))
    distances = [
        frechet_distance_of_features(features.numpy(), source(c).numpy())
        for c in noise_levels(clips, (5, 20, 80), -255, 255)
    ]
    assert distances == sorted(distances) and distances[0] > 0


@pytest.mark.slow
def test_i3d_published_layout(tmp_path):
    source = randomize(i3d.InceptionI3d())
    state = source.state_dict()
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_5c.b1b.conv3d.weight"].shape == (384, 192, 3, 3, 3)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1) and "logits.conv3d.bias" in state
    save(tmp_path, "i3d", state)
    model = i3d.load_i3d(tmp_path)
    clips = torch.rand(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    logits = model(clips)
    assert logits.shape == (2, 400) and torch.equal(logits, source(clips))
    distances = [float(np.abs(model(c).numpy() - logits.numpy()).mean()) for c in noise_levels(clips, low=-1, high=1)]
    assert distances == sorted(distances) and distances[0] > 0


def test_same_padding_matches_tensorflow():
    # TF "SAME": output = ceil(input / stride), the extra padding pixel goes at the end.
    assert i3d.same_padding((16, 224, 224), (7, 7, 7), (2, 2, 2)) == (2, 3, 2, 3, 2, 3)
    assert i3d.same_padding((5,), (3,), (2,)) == (1, 1)


def test_adaface_checkpoint_layout(tmp_path):
    full = adaface.IRBackbone()
    keys = full.state_dict()
    assert len(full.body) == 49  # IR-101: 3 + 13 + 30 + 3 units
    assert keys["body.3.shortcut_layer.0.weight"].shape == (128, 64, 1, 1)
    assert keys["output_layer.3.weight"].shape == (512, 512 * 7 * 7)
    assert "output_layer.4.running_var" in keys and "output_layer.4.weight" not in keys
    source = randomize(adaface.IRBackbone((1, 2, 1, 1)))
    # AdaFace's Lightning checkpoint: backbone under `model.`, the margin head's `head.kernel` beside it.
    checkpoint = {
        "epoch": 26,
        "state_dict": {
            **{f"model.{k}": v for k, v in source.state_dict().items()},
            "head.kernel": torch.zeros(512, 10),
        },
    }
    save(tmp_path, "adaface", checkpoint)
    model = adaface.load_adaface(tmp_path, units=(1, 2, 1, 1))
    faces = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(4)) * 2 - 1
    embeddings = model(faces)
    assert embeddings.shape == (3, 512) and torch.equal(embeddings, source(faces))
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(3))


class _RunsCode:
    """Unpickling this opens a marker file for writing (creating it): what a malicious weight file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_weight_file_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    weights = randomize(resnet3d.ResNet3d()).state_dict()
    path = save(tmp_path, "resnet3d", {"state_dict": weights, "payload": _RunsCode(marker)})
    with pytest.raises(InputError, match="resnet-50-kinetics.pth holds Python objects beyond weights") as error:
        resnet3d.load_resnet3d(tmp_path)
    assert "(io.open)" in str(error.value) and "not loaded" in str(error.value)
    assert not marker.exists()
    # The same file loaded without the weights-only unpickler runs the payload: the test can fail.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_adaface_lightning_checkpoint_loads_without_lightning(tmp_path, monkeypatch):
    """AdaFace's published checkpoint (Lightning 1.4) keys its callback state by the ModelCheckpoint class
    and holds MultiStepLR's Counter of milestones: both load with weights only, Lightning not installed."""
    import collections
    import sys
    import types

    lightning_names = (
        "pytorch_lightning",
        "pytorch_lightning.callbacks",
        "pytorch_lightning.callbacks.model_checkpoint",
    )
    fake = {name: types.ModuleType(name) for name in lightning_names}
    model_checkpoint = type("ModelCheckpoint", (), {"__module__": lightning_names[-1]})
    fake[lightning_names[-1]].ModelCheckpoint = model_checkpoint
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    source = randomize(adaface.IRBackbone((1, 2, 1, 1)))
    checkpoint = {
        "epoch": 26,
        "pytorch-lightning_version": "1.4.4",
        "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()},
        "callbacks": {model_checkpoint: {"best_model_score": torch.tensor(0.9), "dirpath": "experiments/x"}},
        "lr_schedulers": [{"milestones": collections.Counter([12, 20, 24]), "gamma": 0.1, "last_epoch": 26}],
        "hyper_parameters": {"arch": "ir_101", "lr_milestones": [12, 20, 24], "m": 0.4},
        "hparams_name": "kwargs",
    }
    save(tmp_path, "adaface", checkpoint)
    for name in lightning_names:
        monkeypatch.delitem(sys.modules, name)
    model = adaface.load_adaface(tmp_path, units=(1, 2, 1, 1))
    faces = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(4)) * 2 - 1
    assert torch.equal(model(faces), source(faces))
