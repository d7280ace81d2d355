"""Run the TikTok-protocol metrics over paired videos: per-frame scores, per-video and pooled results."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from magicpose.evaluation import adaface, face_cos, frame_metrics, i3d, inception, lpips, resnet3d
from magicpose.evaluation.face_cos import face_cosine_similarities
from magicpose.evaluation.fid import frechet_distance_of_features
from magicpose.evaluation.fid_vid import FID_VID_SIZE, fid_vid_features
from magicpose.evaluation.fvd import FVD_SIZE, fvd_features
from magicpose.evaluation.inception import FID_INPUT_SIZE
from magicpose.evaluation.pairing import VideoPair, read_frames
from magicpose.evaluation.video_features import image_batch

METRICS = ("fid", "ssim", "psnr", "lpips", "lpips-alex", "l1", "face-cos", "fid-vid", "fvd")
# The paper's Table 1 columns, plus FVD.
DEFAULT_METRICS = ("fid", "ssim", "psnr", "lpips", "l1", "face-cos", "fid-vid", "fvd")
REQUIRED_WEIGHTS = {
    "fid": ["inception"],
    "lpips": ["vgg16", "lpips_vgg"],
    "lpips-alex": ["alexnet", "lpips_alex"],
    "face-cos": ["adaface"],
    "fid-vid": ["resnet3d"],
    "fvd": ["i3d"],
}
HIGHER_IS_BETTER = {"ssim", "psnr", "face-cos"}
FRAME_WISE = ("ssim", "psnr", "l1", "lpips", "lpips-alex", "face-cos")
SET_WISE = ("fid", "fid-vid", "fvd")


@dataclass
class Networks:
    """The networks the chosen metrics need (None where a metric is not computed)."""

    inception: torch.nn.Module | None = None
    lpips: dict[str, torch.nn.Module] = field(default_factory=dict)
    adaface: torch.nn.Module | None = None
    face_aligner: Callable | None = None
    resnet3d: torch.nn.Module | None = None
    i3d: torch.nn.Module | None = None
    # Input sizes of the published protocols (tests shrink them to keep CPU time small).
    fid_size: int = FID_INPUT_SIZE
    fid_vid_size: int = FID_VID_SIZE
    fvd_size: int = FVD_SIZE


def load_networks(metrics: list[str], weights_dir: str | Path, device: str | torch.device = "cpu") -> Networks:
    """Load what `metrics` need from `weights_dir` (MissingWeightsError names any missing file)."""

    networks = Networks()
    if "fid" in metrics:
        networks.inception = inception.load_fid_inception(weights_dir).to(device)
    for metric, net in (("lpips", "vgg"), ("lpips-alex", "alex")):
        if metric in metrics:
            networks.lpips[metric] = lpips.load_lpips(weights_dir, net).to(device)
    if "face-cos" in metrics:
        networks.adaface = adaface.load_adaface(weights_dir).to(device)
        networks.face_aligner = face_cos.FaceAligner()
    if "fid-vid" in metrics:
        networks.resnet3d = resnet3d.load_resnet3d(weights_dir).to(device)
    if "fvd" in metrics:
        networks.i3d = i3d.load_i3d(weights_dir).to(device)
    return networks


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def score_video(
    generated: list[np.ndarray],
    reference: list[np.ndarray],
    metrics: list[str],
    protocol: str,
    networks: Networks,
    batch_size: int = 8,
    on_frames: Callable[[int], None] = lambda n: None,
) -> tuple[dict[str, list], dict[str, np.ndarray]]:
    """Per-frame scores and the features of one video's set-wise metrics.

    Returns ``(per_frame, features)``: per_frame[metric] is a list over frames (None where
    Face-Cos found no face); features[f"{metric}/generated"|"/ground_truth"] are (N, D) arrays.
    """
    per_frame: dict[str, list] = {m: [] for m in metrics if m in FRAME_WISE}
    features: dict[str, list] = {}
    for start in range(0, len(generated), batch_size):
        chunk_g = generated[start : start + batch_size]
        chunk_r = reference[start : start + batch_size]
        for g, r in zip(chunk_g, chunk_r):
            for name in ("ssim", "psnr", "l1"):
                if name in per_frame:
                    per_frame[name].append(getattr(frame_metrics, name)(g, r, protocol))
        for name, model in networks.lpips.items():
            if name in per_frame:
                device = _device_of(model)
                x = torch.from_numpy(np.stack(chunk_g)).permute(0, 3, 1, 2).float().div(255).to(device)
                y = torch.from_numpy(np.stack(chunk_r)).permute(0, 3, 1, 2).float().div(255).to(device)
                if protocol == "clean":
                    # LPIPS expects [-1, 1]; the field's code passes [0, 1] (ToTensor) unchanged.
                    x, y = 2 * x - 1, 2 * y - 1
                per_frame[name] += model(x, y).cpu().tolist()
        if "fid" in metrics and networks.inception is not None:
            device = _device_of(networks.inception)
            for side, chunk in (("generated", chunk_g), ("ground_truth", chunk_r)):
                batch = image_batch(chunk, networks.fid_size).to(device)
                features.setdefault(f"fid/{side}", []).append(networks.inception(batch).cpu().numpy())
        if "face-cos" in per_frame and networks.adaface is not None:
            per_frame["face-cos"] += face_cosine_similarities(
                networks.adaface, networks.face_aligner, chunk_g, chunk_r
            )
        on_frames(len(chunk_g))
    if "fid-vid" in metrics and networks.resnet3d is not None:
        for side, frames in (("generated", generated), ("ground_truth", reference)):
            features[f"fid-vid/{side}"] = [
                fid_vid_features(networks.resnet3d, frames, protocol, networks.fid_vid_size)
            ]
    if "fvd" in metrics and networks.i3d is not None:
        for side, frames in (("generated", generated), ("ground_truth", reference)):
            features[f"fvd/{side}"] = [fvd_features(networks.i3d, frames, protocol, networks.fvd_size)]
    return per_frame, {key: np.concatenate(value) for key, value in features.items()}


def _mean(values: list) -> float | None:
    scored = [v for v in values if v is not None]
    return float(np.mean(scored)) if scored else None


def _frechet(features: dict[str, np.ndarray], metric: str) -> float | None:
    generated, reference = features.get(f"{metric}/generated"), features.get(f"{metric}/ground_truth")
    if generated is None or len(generated) < 2 or len(reference) < 2:
        return None
    return frechet_distance_of_features(generated, reference)


def evaluate(
    videos: list[VideoPair],
    metrics: list[str],
    protocol: str,
    networks: Networks,
    batch_size: int = 8,
    progress: bool = True,
) -> dict:
    """Score every video and pool the results.

    Frame-wise metrics pool as the mean over all frames (not of video means), as the field does;
    FID pools all frames; FID-VID and FVD are set-wise over videos (disco) or clips (clean), so
    they have pooled values only. A value is None when there are too few samples to compute it.
    """
    if protocol not in frame_metrics.PROTOCOLS:
        raise ValueError(f"protocol must be one of {frame_metrics.PROTOCOLS}, got {protocol!r}")
    total = sum(len(v.frames) for v in videos)
    bar = tqdm(total=total, unit="frame", desc="evaluate", disable=not progress)
    per_video: dict[str, dict] = {}
    all_frames: dict[str, list] = {}
    all_features: dict[str, list] = {}
    for video in videos:
        bar.set_postfix_str(video.name)
        reference = read_frames([r for _, _, r in video.frames])
        generated = [
            frame_metrics.match_size(g, r, protocol)
            for g, r in zip(read_frames([g for _, g, _ in video.frames]), reference)
        ]
        per_frame, features = score_video(generated, reference, metrics, protocol, networks, batch_size, bar.update)
        summary: dict = {"frames": len(video.frames), "frame_indices": [i for i, _, _ in video.frames]}
        for name, values in per_frame.items():
            summary[name] = _mean(values)
            all_frames.setdefault(name, []).extend(values)
        if "face-cos" in per_frame:
            summary["face_pairs_scored"] = sum(v is not None for v in per_frame["face-cos"])
        if "fid" in metrics:
            summary["fid"] = _frechet(features, "fid")
        summary["per_frame"] = per_frame
        per_video[video.name] = summary
        for key, value in features.items():
            all_features.setdefault(key, []).append(value)
    bar.close()
    pooled_features = {key: np.concatenate(value) for key, value in all_features.items()}
    pooled: dict = {"frames": total, "videos": len(videos)}
    for name in metrics:
        if name in FRAME_WISE:
            pooled[name] = _mean(all_frames.get(name, []))
        else:
            pooled[name] = _frechet(pooled_features, name)
    if "face-cos" in metrics:
        pooled["face_pairs_scored"] = sum(v is not None for v in all_frames.get("face-cos", []))
    for name in ("fid-vid", "fvd"):
        if name in metrics:
            pooled[f"{name}_samples"] = len(pooled_features.get(f"{name}/generated", []))
    return {"protocol": protocol, "metrics": list(metrics), "pooled": pooled, "videos": per_video}


def finite_or_text(value):
    """JSON has no infinity: write non-finite floats as text ("inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite_or_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_text(v) for v in value]
    return value
