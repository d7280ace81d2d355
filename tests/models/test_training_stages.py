import pytest
import torch

from magicpose.models.magicpose_model import MagicPoseModel
from tests.dummy_components import get_dummy_components, get_dummy_inputs


@pytest.fixture()
def model():
    c = get_dummy_components()
    return MagicPoseModel(c["unet"], c["appearance_control"], c["pose_control"])


def _backward(model):
    inputs = get_dummy_inputs(frames=2)
    eps = model(
        inputs["noisy_latents"],
        torch.tensor([700, 50]),
        inputs["context"],
        reference_latents=inputs["reference_latents"].expand(2, -1, -1, -1),
        pose_images=inputs["pose_images"],
    )
    eps.square().mean().backward()


@pytest.mark.parametrize("stage", ["appearance", "pose"])
def test_every_trainable_parameter_gets_a_gradient_and_the_base_unet_none(model, stage):
    names = set(model.set_training_stage(stage))
    _backward(model)
    parameters = dict(model.named_parameters())
    assert names and all(parameters[name].grad is not None and parameters[name].grad.abs().sum() > 0 for name in names)
    assert all(p.grad is None for p in model.unet.parameters())
    assert all(not p.requires_grad for p in model.unet.parameters())
    trains_pose = any(name.startswith("pose_control.") for name in names)
    assert trains_pose == (stage == "pose")


def test_frozen_appearance_layers_are_exactly_those_nothing_reads(model):
    names = set(model.set_training_stage("appearance"))
    frozen = {n for n, _ in model.appearance_control.named_parameters()} - {
        n.removeprefix("appearance_control.") for n in names
    }
    assert frozen and all(name.startswith("up_blocks.2.attentions.1.") for name in frozen)
    assert not any(".norm1." in name for name in frozen)  # norm1 feeds the bank: it trains
    model.appearance_control.requires_grad_(True)
    _backward(model)
    grads = dict(model.appearance_control.named_parameters())
    assert all(grads[name].grad is None for name in frozen)


def test_unknown_stage_is_an_error(model):
    with pytest.raises(ValueError, match="unknown training stage"):
        model.set_training_stage("everything")


@pytest.mark.parametrize("given", [True, False])
def test_building_a_model_changes_no_flag_it_is_given(given):
    """Freezing is training's business (`set_training_stage`): the model's constructor leaves every
    network's requires_grad flags as it finds them, mixed ones included."""
    c = get_dummy_components()
    networks = (c["unet"], c["appearance_control"], c["pose_control"])
    for network in networks:
        network.requires_grad_(given)
    mixed = next(c["unet"].parameters())
    mixed.requires_grad_(not given)
    flags = [[p.requires_grad for p in network.parameters()] for network in networks]
    model = MagicPoseModel(*networks)
    assert [[p.requires_grad for p in network.parameters()] for network in networks] == flags
    assert mixed.requires_grad is (not given) and sum(f.count(given) for f in flags) > 800
    model.set_training_stage("appearance")  # the stage freezes the base UNet
    assert not any(p.requires_grad for p in c["unet"].parameters())
