"""The official implementation's sampling order, kept as the yardstick for the pipeline's speed-ups
(test and benchmark code only: nothing shipped samples this way).

The official script generates one frame at a time; at every step it runs the appearance branch for
that frame, the conditional branch, and an unconditional branch that also runs the Pose ControlNet and
throws its residuals away (BRIEF §1). `MagicPosePipeline.denoise` computes the same numbers with one
appearance pass per step for all frames and no ControlNet call in the unconditional branch; tests and
`benchmarks/bench_pipeline.py` compare the two.
"""

from __future__ import annotations

import torch

from magicpose.pipelines.image_guidance import guided_epsilon


@torch.no_grad()
def official_style_denoise(
    pipeline,
    latents: torch.Tensor,
    reference_latents: torch.Tensor,
    pose_images: torch.Tensor,
    context: torch.Tensor,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.0,
) -> torch.Tensor:
    """Frame by frame, as the official code samples (DDIM, eta 0)."""
    model = pipeline.model
    frames = []
    for index in range(pose_images.shape[0]):
        x = latents[index : index + 1] if latents.shape[0] > 1 else latents.clone()
        pose = pose_images[index : index + 1]
        pipeline.scheduler.set_timesteps(num_inference_steps, device=x.device)
        for t in pipeline.scheduler.timesteps:
            eps_conditional = model(x, t, context, reference_latents=reference_latents, pose_images=pose)
            pipeline.pose_control(x, t, encoder_hidden_states=context, controlnet_cond=pose, return_dict=False)
            eps_unconditional = model(x, t, context)
            eps = guided_epsilon(eps_conditional, eps_unconditional, guidance_scale)
            x = pipeline.scheduler.step(eps, t, x, return_dict=False)[0]
        frames.append(x)
    return torch.cat(frames)
