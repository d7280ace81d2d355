import torch

from magicpose.models.presets import build_components
from magicpose.training.export import calibrate_vae_latents


def test_vae_calibration_centres_and_scales_the_latents_without_changing_reconstructions():
    vae = build_components("puppet")["vae"]
    with torch.no_grad():
        vae.quant_conv.bias[:4] += torch.tensor([3.0, -2.0, 1.0, 4.0])  # latents with large per-channel offsets
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = vae.decode(vae.encode(images).latent_dist.mode()).sample
        scale = calibrate_vae_latents(vae, images)
        latents = vae.encode(images).latent_dist.mode()
        after = vae.decode(latents).sample
    assert torch.allclose(before, after, atol=1e-5)
    assert latents.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert abs((latents * scale).std().item() - 1.0) < 1e-3
