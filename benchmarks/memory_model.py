"""Memory of each stage of a generation, counted on the meta device (no weight allocated, nothing computed).

Shared by `bench_memory.py` (the table) and `bench_gpu.py` (the configurations it measures). Activations:
every tensor an op creates is counted from its creation until it is freed, and the peak of the live total
is the stage's need. Attention counts as a fused kernel (flash / memory-efficient SDPA: the output only),
as a GPU runs it; the meta device would otherwise run the math path that materialises the score matrix.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.utils import logging as diffusers_logging
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.official_checkpoint import diffusers_configs, instantiate, load_ldm_config
from magicpose.pipelines.image_guidance import guided_epsilon
from magicpose.pipelines.offload import decode_batch

META = torch.device("meta")
GIB = 2**30
TIMESTEP = 500
GUIDANCE = 7.0
NETWORKS = ("unet", "appearance_control", "pose_control", "vae")


class FusedAttention(TorchFunctionMode):
    """`scaled_dot_product_attention` as a fused kernel: allocates its output, never the scores."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            query, value = args[0], args[2] if len(args) > 2 else kwargs["value"]
            return query.new_empty((*query.shape[:-1], value.shape[-1]))
        return func(*args, **kwargs)


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the tensors created inside the block and still alive (views share their base's)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._holders: dict[int, int] = {}  # storage id -> tensors holding it

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {_storage_id(t) for t in _tensors((args, kwargs))}
        for tensor in _tensors(out):
            key = _storage_id(tensor)
            if key not in self._holders and key in inputs:
                continue  # a view or in-place result of a tensor made outside the block (a weight)
            if key not in self._holders:
                self._holders[key] = 0
                self.live += tensor.untyped_storage().nbytes()
                self.peak = max(self.peak, self.live)
            self._holders[key] += 1
            weakref.finalize(tensor, self._release, key, tensor.untyped_storage().nbytes())
        return out

    def _release(self, key: int, nbytes: int) -> None:
        self._holders[key] -= 1
        if not self._holders[key]:
            del self._holders[key]
            self.live -= nbytes


def _storage_id(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


def _tensors(tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (list, tuple)):
        return [t for item in tree for t in _tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in _tensors(item)]
    return []


def activation_peak(fn) -> tuple[int, object]:
    """Peak bytes of the activations of `fn()` on meta tensors, and its result."""
    with torch.no_grad(), FusedAttention(), LiveBytes() as counter:
        result = fn()
    return counter.peak, result


def build_meta_networks(dtype: torch.dtype = torch.float16) -> dict[str, torch.nn.Module]:
    """The SD-1.5-size networks (official model YAML) on the meta device, in `dtype`."""
    configs = diffusers_configs(load_ldm_config())
    diffusers_logging.set_verbosity_error()  # "modules that should be kept in float32: []" per network
    with META:
        networks = {name: instantiate(name, configs[name]).to(dtype).eval() for name in NETWORKS}
    return networks


def weight_bytes(module: torch.nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class StageNeeds:
    """Bytes per stage of one generation: weights per network, activations per stage."""

    weights: dict[str, int]
    encode: int  # VAE encoder, the one reference
    appearance: int  # one appearance pass
    bank: int  # the reference bank of one step
    step: int  # one guided denoising step (one frame chunk at a time, plus what every frame holds)
    decode: int  # VAE decoder, `decode_batch(chunk)` frames
    decode_before: int  # VAE decoder, a whole frame chunk (as before issue 30)

    def resident(self) -> dict[str, int]:
        """Every network on the GPU all the time: weights + the stage's activations."""
        total = sum(self.weights.values())
        return {
            "encode": total + self.encode,
            "appearance": total + self.appearance + self.bank,
            "denoise": total + self.step + 2 * self.bank,  # a step's bank is made while the last one is held
            "decode": total + self.decode,
            "decode (before)": total + self.decode_before,
        }

    def offload(self) -> dict[str, int]:
        """The offload plan: each network on the GPU for its phase only, the banks parked on the host."""
        w = self.weights
        return {
            "encode": w["vae"] + self.encode,
            "appearance": w["appearance_control"] + self.appearance + self.bank,
            "denoise": w["unet"] + w["pose_control"] + self.step + self.bank,
            "decode": w["vae"] + self.decode,
            "decode (before)": w["vae"] + self.decode_before,
        }


class StageCounter:
    """Counts `StageNeeds` for any size, frame count and chunk with one set of meta networks."""

    def __init__(self, dtype: torch.dtype = torch.float16):
        self.dtype = dtype
        self.networks = build_meta_networks(dtype)
        self.model = MagicPoseModel(
            self.networks["unet"], self.networks["appearance_control"], self.networks["pose_control"]
        )
        self.weights = {name: weight_bytes(module) for name, module in self.networks.items()}
        self._cache: dict[tuple, int] = {}

    def empty(self, *shape) -> torch.Tensor:
        return torch.empty(*shape, device=META, dtype=self.dtype)

    def needs(self, height: int, width: int, frames: int, chunk: int) -> StageNeeds:
        h, w = height // 8, width // 8
        chunk = min(chunk, frames)
        context = self.empty(1, 77, self.networks["unet"].config.cross_attention_dim)
        reference = self.empty(1, 4, h, w)

        def encode():
            return self.networks["vae"].encode(self.empty(1, 3, height, width)).latent_dist.mode()

        appearance, features = self._once(
            ("appearance", h, w), lambda: self.model.encode_reference(reference, TIMESTEP, context)
        )
        bank = sum(t.numel() * t.element_size() for t in features.values()) if features is not None else 0
        features = {name: self.empty(*t.shape) for name, t in features.items()} if features is not None else None

        def step():
            x, poses = self.empty(chunk, 4, h, w), self.empty(chunk, 3, height, width)
            conditional = self.model(x, TIMESTEP, context, pose_images=poses, reference_features=features)
            return guided_epsilon(conditional, self.model(x, TIMESTEP, context), GUIDANCE)

        # What every frame holds across the step: latents, the scaled input, each chunk's epsilon, the
        # concatenated epsilon and the scheduler's new latents.
        # The pose hint embeddings kept for the whole loop (`models.pose_hints`) are held too.
        hint_channels = self.networks["pose_control"].config.block_out_channels[0]
        held = (5 * 4 + hint_channels) * frames * h * w * torch.finfo(self.dtype).bits // 8
        return StageNeeds(
            weights=dict(self.weights),
            encode=self._once(("encode", h, w), encode)[0],
            appearance=appearance,
            bank=bank,
            step=held + self._once(("step", h, w, chunk), step)[0],
            decode=self._decode(h, w, decode_batch(chunk)),
            decode_before=self._decode(h, w, chunk),
        )

    def _decode(self, h: int, w: int, frames: int) -> int:
        return self._once(
            ("decode", h, w, frames), lambda: self.networks["vae"].decode(self.empty(frames, 4, h, w)).sample
        )[0]

    def _once(self, key: tuple, fn) -> tuple[int, object]:
        if key not in self._cache:
            peak, result = activation_peak(fn)
            if isinstance(result, dict):  # keep only shapes: the bank's tensors
                result = {name: torch.empty(t.shape, device=META, dtype=t.dtype) for name, t in result.items()}
            self._cache[key] = (peak, result if isinstance(result, dict) else None)
        return self._cache[key]
