import math
import warnings
from types import SimpleNamespace

import numpy as np
import torch

from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.evaluation.puppet_benchmark import (
    METRICS,
    PuppetEvaluation,
    evaluate_on_puppets,
    reconstruct_puppets,
    score_frame,
)
from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components


def test_ground_truth_scores_perfectly_and_a_blank_frame_badly():
    video = PuppetVideo(video_spec("test", 1, width=64, height=64, num_frames=2))
    truth = video.frame(1)
    perfect = score_frame(truth.image, truth, video.background)
    assert perfect["mask_iou"] > 0.95 and perfect["identity_colour_error"] == 0.0
    assert math.isinf(perfect["masked_psnr"]) or perfect["masked_psnr"] > 60
    empty_scene = score_frame(video.background.copy(), truth, video.background)
    assert empty_scene["mask_iou"] == 0.0
    assert empty_scene["masked_psnr"] < perfect["masked_psnr"]


def test_evaluation_runs_a_model_on_held_out_puppets():
    pipeline = MagicPosePipeline(**get_dummy_components())
    pipeline.set_progress_bar_config(disable=True)
    result = evaluate_on_puppets(
        pipeline, videos=2, frames_per_video=2, size=32, num_inference_steps=1, progress=False
    )
    assert len(result.per_frame) == 4 and len(result.per_pair) == 2  # one pair of consecutive frames per video
    means = result.mean()
    assert set(means) == set(METRICS)
    assert all(
        np.isfinite(means[name]) for name in ("mask_iou", "ssim", "l1", "frame_difference_error", "background_flicker")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one frame per video: no pair, and no "mean of empty slice" warning
        without_hands = evaluate_on_puppets(
            pipeline,
            videos=1,
            frames_per_video=1,
            size=32,
            num_inference_steps=1,
            hands=False,
            face=False,
            progress=False,
        )
        single = without_hands.mean()
    assert len(without_hands.per_frame) == 1 and not without_hands.per_pair
    assert np.isnan(single["frame_difference_error"]) and np.isfinite(single["masked_ssim"])


def test_ground_truth_video_has_no_temporal_error_and_no_flicker():
    video = PuppetVideo(video_spec("test", 2, width=64, height=64, num_frames=4))
    truths = [video.frame(k) for k in (1, 2, 3)]
    evaluation = PuppetEvaluation()
    evaluation.add_video([truth.image for truth in truths], truths, video.background)
    scores = evaluation.mean()
    assert scores["frame_difference_error"] == 0.0 and scores["background_flicker"] == 0.0
    frozen = PuppetEvaluation()
    frozen.add_video([truths[0].image] * 3, truths, video.background)
    assert frozen.mean()["frame_difference_error"] > 0.0  # the puppet moves, a frozen video does not
    noisy = PuppetEvaluation()
    rng = np.random.default_rng(0)
    noisy.add_video(
        [np.clip(t.image + rng.integers(-8, 9, t.image.shape), 0, 255).astype(np.uint8) for t in truths],
        truths,
        video.background,
    )
    assert noisy.mean()["background_flicker"] > 3.0


class _LosslessAutoencoder(torch.nn.Module):
    """A VAE whose latents are the image itself: its reconstructions are the ground truth."""

    config = SimpleNamespace(scaling_factor=1.0)

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    @property
    def dtype(self):
        return self.anchor.dtype

    @property
    def device(self):
        return self.anchor.device

    def encode(self, images):
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: images))

    def decode(self, latents):
        return SimpleNamespace(sample=latents)


def test_vae_ceiling_of_a_lossless_autoencoder_is_the_ground_truth_score():
    pipeline = MagicPosePipeline(**get_dummy_components())
    pipeline.vae = _LosslessAutoencoder()
    ceiling = reconstruct_puppets(pipeline, videos=1, frames_per_video=2, size=32, progress=False)
    video = PuppetVideo(video_spec("test", 0, width=32, height=32, num_frames=1 + 2 * 3))
    truths = [score_frame(video.frame(k).image, video.frame(k), video.background) for k in (1, 4)]
    assert ceiling.per_frame == truths  # same frames, channel order and value range as the evaluation


def test_vae_ceiling_of_a_lossy_autoencoder_is_below_the_ground_truth():
    pipeline = MagicPosePipeline(**get_dummy_components())
    ceiling = reconstruct_puppets(pipeline, videos=1, frames_per_video=2, size=32, progress=False).mean()
    assert set(ceiling) == set(METRICS) and ceiling["masked_psnr"] < 60 and 0.0 <= ceiling["mask_iou"] <= 1.0
