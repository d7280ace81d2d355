"""FLOPs of one guided denoising step at SD-1.5 size: our sampling order against the official one.

    .venv/bin/python benchmarks/bench_flops.py [--frames 1 16] [--size 512]

Counts, with `torch.utils.flop_counter.FlopCounterMode`, the floating-point operations of one
denoising step with image guidance (guidance scale != 1) for N frames of 512x512 (64x64 latents).
The three SD-1.5-size networks (base UNet, Appearance Control Model, Pose ControlNet) are built from
the official model YAML (`official_checkpoint.diffusers_configs`) on the meta device: no weights
are allocated and nothing is computed, so it runs on CPU in well under a minute with little memory.
Matrix products, convolutions and attention are counted (one multiply-add = 2 FLOPs); element-wise
work (norms, activations, softmax) is not. On the meta device `scaled_dot_product_attention` runs its
math decomposition, whose two batched products are what the counter sees; the check line below the
table (a single plain UNet call) makes sure attention is in the count.

The two orders, per denoising step (guidance: eps = eps_u + w (eps_c - eps_u)):

- ours (`MagicPosePipeline.denoise`): one appearance pass (`MagicPoseModel.encode_reference`) for
  all frames; the conditional branch (base UNet reading the reference bank + pose ControlNet) on the
  N frames in one batch; the unconditional branch, the plain base UNet only. The ControlNet's hint
  encoder runs once per generation (`models/pose_hints.py`), so it is not in a step.
- official (`tests/official_sampling.official_style_denoise`, BRIEF §1): frame by frame, the
  appearance pass, the conditional branch, and an unconditional branch that also runs the pose
  ControlNet and throws its residuals away.

Prints TFLOP per frame per step for each order and frame count, the ratio official/ours on our rows,
and the per-frame cost of each network call.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.official_checkpoint import diffusers_configs, instantiate, load_ldm_config
from magicpose.models.pose_hints import reuse_pose_hints
from magicpose.pipelines.image_guidance import guided_epsilon

META = torch.device("meta")
GUIDANCE = 7.0
TIMESTEP = 500  # the count does not depend on it


def build_meta_model() -> MagicPoseModel:
    """The SD-1.5-size MagicPose networks, parameters on the meta device (no memory)."""
    configs = diffusers_configs(load_ldm_config())
    with META:
        networks = {name: instantiate(name, configs[name]) for name in ("unet", "appearance_control", "pose_control")}
    model = MagicPoseModel(networks["unet"], networks["appearance_control"], networks["pose_control"])
    return model.eval()


def flops(fn) -> tuple[int, dict[str, int]]:
    """Total FLOPs of `fn()` and their split by aten op."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    by_op = {str(op).split(".")[-1]: count for op, count in counter.get_flop_counts()["Global"].items()}
    return counter.get_total_flops(), by_op


def inputs(frames: int, latent: int, context_shape: tuple[int, int]) -> dict[str, torch.Tensor]:
    return {
        "x": torch.empty(frames, 4, latent, latent, device=META),
        "poses": torch.empty(frames, 3, latent * 8, latent * 8, device=META),
        "reference": torch.empty(1, 4, latent, latent, device=META),
        "context": torch.empty(1, *context_shape, device=META),
    }


def ours_step(model: MagicPoseModel, x, poses, reference, context) -> torch.Tensor:
    """One step of `MagicPosePipeline.denoise` (all frames in one chunk, guidance on)."""
    features = model.encode_reference(reference, TIMESTEP, context)
    eps_conditional = model(x, TIMESTEP, context, pose_images=poses, reference_features=features)
    eps_unconditional = model(x, TIMESTEP, context)
    return guided_epsilon(eps_conditional, eps_unconditional, GUIDANCE)


def official_step(model: MagicPoseModel, x, poses, reference, context) -> torch.Tensor:
    """One step of `official_style_denoise` for every frame, one frame at a time."""
    eps = []
    for index in range(x.shape[0]):
        frame, pose = x[index : index + 1], poses[index : index + 1]
        eps_conditional = model(frame, TIMESTEP, context, reference_latents=reference, pose_images=pose)
        model.pose_control(frame, TIMESTEP, encoder_hidden_states=context, controlnet_cond=pose, return_dict=False)
        eps_unconditional = model(frame, TIMESTEP, context)
        eps.append(guided_epsilon(eps_conditional, eps_unconditional, GUIDANCE))
    return torch.cat(eps)


def components(model: MagicPoseModel, x, poses, reference, context) -> dict[str, int]:
    """FLOPs of each network call for one frame (the appearance pass for its one reference)."""
    frame, pose = x[:1], poses[:1]
    features = model.encode_reference(reference, TIMESTEP, context)
    calls = {
        "appearance pass (1 reference)": lambda: model.encode_reference(reference, TIMESTEP, context),
        "pose ControlNet": lambda: model.pose_control(
            frame, TIMESTEP, encoder_hidden_states=context, controlnet_cond=pose, return_dict=False
        ),
        "base UNet + reference bank": lambda: model(frame, TIMESTEP, context, reference_features=features),
        "plain base UNet": lambda: model(frame, TIMESTEP, context),
    }
    counts = {}
    for name, call in calls.items():
        counts[name] = flops(call)[0]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (latents: size / 8)")
    args = parser.parse_args()
    latent = args.size // 8
    started = time.perf_counter()

    model = build_meta_model()
    context_shape = (77, model.unet.config.cross_attention_dim)

    # Check: a single plain SD-1.5 UNet call, and that attention (SDPA's batched products) is counted.
    one = inputs(1, latent, context_shape)
    unet_total, unet_ops = flops(lambda: model(one["x"], TIMESTEP, one["context"]))
    attention = unet_ops.get("bmm", 0) + unet_ops.get("baddbmm", 0)
    if not 0.5e12 < unet_total < 1.2e12 or attention < 0.05 * unet_total:
        raise RuntimeError(f"implausible count for one SD-1.5 UNet call: {unet_total:.3e} FLOPs, {unet_ops}")

    rows = []
    for frames in args.frames:
        batch = inputs(frames, latent, context_shape)
        per_frame = {}
        model.bank.disable()
        per_frame["official"] = flops(lambda: official_step(model, **batch))[0] / frames
        with reuse_pose_hints(model.pose_control):
            # The hint encoder runs once per generation (models/pose_hints.py), not in a step.
            model.pose_control.controlnet_cond_embedding(batch["poses"])
            per_frame["ours"] = flops(lambda: ours_step(model, **batch))[0] / frames
        rows.append((frames, per_frame))

    print(
        f"one denoising step with image guidance (w = {GUIDANCE:g}), {args.size}x{args.size} "
        f"({latent}x{latent} latents), SD-1.5 size"
    )
    for frames, per_frame in rows:
        print(f"official  {frames:>2} frames  {per_frame['official'] / 1e12:.2f} TFLOP/frame/step")
        ratio = per_frame["official"] / per_frame["ours"]
        print(f"ours      {frames:>2} frames  {per_frame['ours'] / 1e12:.2f} TFLOP/frame/step  {ratio:.2f}x")

    print()
    print("per call, one frame:")
    for name, count in components(model, **one).items():
        print(f"  {name:<30} {count / 1e12:.3f} TFLOP")
    split = ", ".join(f"{op} {count / 1e12:.3f}" for op, count in sorted(unet_ops.items()))
    print(
        f"check: plain UNet call {unet_total / 1e12:.3f} TFLOP ({split}; attention = bmm {attention / unet_total:.0%})"
    )
    print(f"counted in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
