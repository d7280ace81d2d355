import math

import numpy as np
import pytest

from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.evaluation.puppet_benchmark import METRICS, evaluate_on_puppets, score_frame
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
    result = evaluate_on_puppets(pipeline, videos=2, frames_per_video=2, size=32, num_inference_steps=1, progress=False)
    assert len(result.per_frame) == 4
    means = result.mean()
    assert set(means) == set(METRICS) and all(np.isfinite(means[name]) for name in ("mask_iou", "ssim", "l1"))
    without_hands = evaluate_on_puppets(pipeline, videos=1, frames_per_video=1, size=32, num_inference_steps=1,
                                        hands=False, face=False, progress=False)
    assert len(without_hands.per_frame) == 1
