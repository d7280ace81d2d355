"""`MagicPosePipeline`: animate a reference photo with a sequence of poses (a diffusers pipeline)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, ControlNetModel, DiffusionPipeline, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.motion_module import is_motion_unet
from magicpose.models.pose_hints import reuse_pose_hints
from magicpose.models.text_context import TextContext, encode_prompt
from magicpose.pipelines.image_guidance import guidance_scale_at, image_guidance
from magicpose.pipelines.offload import OffloadPlan, decode_batch, phase, reference_banks
from magicpose.pipelines.recipe import RECIPE_KEYS, check_recipe
from magicpose.pipelines.schedulers import step_timestep
from magicpose.pipelines.windows import denoise_in_windows
from magicpose.poses.render import draw_openpose
from magicpose.poses.types import PoseSequence


def unit_float(image):
    """uint8 arrays as float32 in [0, 1]: diffusers' image processor takes numpy images in [0, 1] and
    would otherwise feed 0..255 to the networks (PIL images and tensors pass through unchanged)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image


@dataclass
class MagicPosePipelineOutput(BaseOutput):
    """`frames`: a list of PIL images, an (N, H, W, 3) float array in [0, 1], or an (N, 3, H, W) tensor in [0, 1]."""

    frames: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class MagicPosePipeline(DiffusionPipeline):
    """Pose and expression retargeting with MagicPose (frozen SD-1.5 UNet + appearance and pose control).

    Components: `unet` (frozen base UNet), `appearance_control` (Appearance Control Model),
    `pose_control` (Pose ControlNet), `vae`, `text_context` (the empty prompt's embedding), `scheduler`
    (the official DDIM by default; any diffusers scheduler can be swapped in), and optionally
    `text_encoder` + `tokenizer` for text prompts.

    A model folder owns its sampling recipe: the scheduler component and, in model_index.json,
    `num_inference_steps`, `guidance_scale`, `guidance_interval`, `start_from_reference`,
    `window_frames` and `window_overlap`, the defaults of `__call__`. The constructor's defaults are
    the official recipe (DDIM, 50 steps, guidance 7, pure noise, 16-frame windows overlapping by 4).
    """

    model_cpu_offload_seq = "text_encoder->appearance_control->pose_control->unet->vae"
    _optional_components = ["text_encoder", "tokenizer"]
    # A 236 KB buffer with no parameters: accelerate's offload hook cannot place it (it looks for a
    # parameter), and it is moved to the execution device per call anyway.
    _exclude_from_cpu_offload = ["text_context"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        appearance_control: AppearanceControlModel,
        pose_control: ControlNetModel,
        text_context: TextContext,
        scheduler: KarrasDiffusionSchedulers,
        text_encoder=None,
        tokenizer=None,
        start_from_reference: bool = False,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.0,
        guidance_interval: tuple[float, float] | None = None,
        window_frames: int = 16,
        window_overlap: int = 4,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            unet=unet,
            appearance_control=appearance_control,
            pose_control=pose_control,
            text_context=text_context,
            scheduler=scheduler,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
        )
        self.register_to_config(
            start_from_reference=start_from_reference,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            guidance_interval=list(guidance_interval) if guidance_interval is not None else None,
            window_frames=window_frames,
            window_overlap=window_overlap,
        )
        self._model: MagicPoseModel | None = None
        self.offload_plan: OffloadPlan | None = None
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.pose_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_normalize=False)

    def enable_vae_tiling(self) -> None:
        """Decode large frames tile by tile (less memory; seams are blended, so pixels change slightly)."""
        self.vae.enable_tiling()

    def enable_vae_slicing(self) -> None:
        """Decode one frame at a time (the default is already a few frames at a time: `decode_latents`)."""
        self.vae.enable_slicing()

    def enable_offload_plan(self, device: torch.device | str = "cuda") -> None:
        """Small GPUs: each network on `device` only for its phase of a call, none moved inside the
        denoising loop (`magicpose.pipelines.offload`). Same results as running resident."""
        self.offload_plan = OffloadPlan(device)
        self.offload_plan.place(self)

    @property
    def model(self) -> MagicPoseModel:
        """The three networks wired together. Built once per set of networks, so the attention processors
        are installed once (a processor a user sets afterwards stays); it holds no weights of its own."""
        networks = (self.unet, self.appearance_control, self.pose_control)
        if self._model is None or any(a is not b for a, b in zip(networks, self._model.networks)):
            self._model = MagicPoseModel(*networks)
        return self._model

    def recipe(self, **overrides) -> dict:
        """The model's sampling settings (its config) with the given non-None values in their place."""
        settings = {key: self.config.get(key) for key in RECIPE_KEYS}
        settings.update({key: value for key, value in overrides.items() if value is not None})
        if settings["guidance_interval"] is not None:
            settings["guidance_interval"] = tuple(settings["guidance_interval"])
        check_recipe(**settings)
        return settings

    def encode_context(self, prompt: str | None) -> torch.Tensor:
        if not prompt:
            return self.text_context().to(device=self._execution_device, dtype=self.unet.dtype)
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("a text prompt needs a text_encoder and a tokenizer in the pipeline")
        with phase(self.offload_plan, self.text_encoder):
            return encode_prompt(self.text_encoder, prompt, self.tokenizer).to(self._execution_device, self.unet.dtype)

    def encode_reference(self, image: torch.Tensor) -> torch.Tensor:
        """Clean reference latent: the VAE posterior mean times the scaling factor.

        The official code draws `posterior.sample()`, a random draw around that mean; the mean makes
        results independent of the sampler's RNG (SD's VAE posterior std is about 1e-2 of the mean).
        """
        image = image.to(device=self._execution_device, dtype=self.vae.dtype)
        with phase(self.offload_plan, self.vae):
            return self.vae.encode(image).latent_dist.mode() * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor, chunk_size: int) -> torch.Tensor:
        """Latents to images in [-1, 1], at most `chunk_size` and a few frames at a time: VAE memory grows
        with the batch, and at the defaults it was the peak of a whole generation (`offload.decode_batch`)."""
        scale = 1.0 / self.vae.config.scaling_factor
        parts = latents.split(decode_batch(chunk_size))
        with phase(self.offload_plan, self.vae):
            return torch.cat([self.vae.decode((part * scale).to(self.vae.dtype)).sample for part in parts])

    def prepare_poses(self, poses, height: int, width: int) -> torch.Tensor:
        """Pose condition images (N, 3, H, W) in [0, 1] from images, a tensor or a `PoseSequence`."""

        if isinstance(poses, PoseSequence):
            # Draw at the condition size (scaling keypoints, not pixels): stroke widths stay the annotator's.
            scale = np.array([width / poses.width, height / poses.height])
            poses = [draw_openpose(pose.transformed(scale, np.zeros(2)), width, height) for pose in poses.frames]
        if isinstance(poses, torch.Tensor):
            if poses.ndim != 4 or poses.shape[1] != 3:
                raise ValueError(f"pose tensor must be (N, 3, H, W) in [0, 1], got {tuple(poses.shape)}")
            poses = (
                torch.nn.functional.interpolate(poses, size=(height, width), mode="bilinear")
                if poses.shape[-2:] != (height, width)
                else poses
            )
            return poses.to(self._execution_device, self.unet.dtype)
        if len(poses) == 0:
            raise ValueError("no pose frames were given")
        poses = [unit_float(pose) for pose in poses]
        return self.pose_processor.preprocess(poses, height=height, width=width).to(
            self._execution_device, self.unet.dtype
        )

    @property
    def pose_scale_factor(self) -> int:
        """Pose image pixels per latent pixel: the ControlNet's hint encoder downsamples by 2 per stage.
        Equal to the VAE factor at SD size (8); the two can differ in reduced models."""
        return 2 ** (len(self.pose_control.config.conditioning_embedding_out_channels) - 1)

    @torch.no_grad()
    def denoise(
        self,
        latents: torch.Tensor,
        reference_latents: torch.Tensor | None,
        pose_images: torch.Tensor | None,
        context: torch.Tensor,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        frame_chunk_size: int = 16,
        window_frames: int | None = None,
        window_overlap: int | None = None,
        start_from_reference: bool | None = None,
        guidance_interval: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """The sampling loop in latent space: N frames from initial noise (1 or N, 4, h, w).

        Per step: one appearance pass for all frames, then per chunk of frames the conditional branch
        (reference bank + pose ControlNet) and, for guidance, the plain base UNet. With a motion module
        in the UNet, frames go through in overlapping windows of `window_frames` instead of chunks.
        `reference_latents=None` switches the appearance branch off: the base UNet with the pose
        ControlNet alone (the first row of the paper's ablation, Table 3); `pose_images=None` too: the
        plain base UNet, N = the latents' batch (a prerequisite stage's prior). `start_from_reference` mixes
        the reference latents into the initial noise as the scheduler's forward process does at the
        first timestep (`add_noise`); True needs `reference_latents`, None follows the model's setting
        where there is a reference. Settings left None come from the model's recipe (`__call__`).
        """
        if start_from_reference is None:
            start_from_reference = reference_latents is not None and bool(self.config.start_from_reference)
        recipe = self.recipe(
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            guidance_interval=guidance_interval,
            window_frames=window_frames,
            window_overlap=window_overlap,
        )
        num_inference_steps, guidance_scale, guidance_interval = (
            recipe["num_inference_steps"],
            recipe["guidance_scale"],
            recipe["guidance_interval"],
        )
        frames = latents.shape[0] if pose_images is None else pose_images.shape[0]
        # Latents and the scheduler's arithmetic in float32 whatever the networks' dtype: half-precision
        # updates of x_t would round at every step; the networks still get their own dtype.
        latents = latents.expand(frames, -1, -1, -1) if latents.shape[0] == 1 else latents
        latents = latents.to(torch.float32, copy=True)
        if latents.shape[0] != frames:
            raise ValueError(f"{latents.shape[0]} initial latents for {frames} pose frames")
        self.scheduler.set_timesteps(num_inference_steps, device=latents.device)
        if start_from_reference:
            if reference_latents is None:
                raise ValueError("start_from_reference needs reference latents")
            reference = reference_latents.to(latents.dtype).expand_as(latents)
            latents = self.scheduler.add_noise(reference, latents, self.scheduler.timesteps[:1])
        else:
            latents = latents * self.scheduler.init_noise_sigma
        step_parameters = inspect.signature(self.scheduler.step).parameters
        step_kwargs = {key: value for key, value in (("eta", eta), ("generator", generator)) if key in step_parameters}

        model = self.model
        timesteps = self.scheduler.timesteps
        banks = reference_banks(model, reference_latents, timesteps, context, self.offload_plan)
        # One bar over frames x steps, so long videos show their rate in frames per second.
        with (
            phase(self.offload_plan, self.unet, self.pose_control),
            reuse_pose_hints(self.pose_control),
            self.progress_bar(total=len(timesteps) * frames) as progress,
        ):
            progress.unit = "frame-step"
            # The timesteps read once as numbers: DDIM's tables and the guidance interval then take
            # Python ints, and no step waits for the device (a tensor index is a host sync).
            for t, step in zip(timesteps, timesteps.tolist()):
                scale = guidance_scale_at(step, guidance_scale, guidance_interval)
                model_input = self.scheduler.scale_model_input(latents, t).to(self.unet.dtype)
                # The reference branch does not depend on the frame: one pass per step serves every chunk.
                features = next(banks)
                if is_motion_unet(self.unet):
                    # Frames of a clip attend to each other: overlapping windows, each one clip, blended.
                    noise_pred = denoise_in_windows(
                        model,
                        model_input,
                        t,
                        context,
                        pose_images,
                        features,
                        scale,
                        window=recipe["window_frames"],
                        overlap=recipe["window_overlap"],
                        frame_chunk_size=frame_chunk_size,
                    )
                    progress.update(frames)
                else:
                    chunks = []
                    pose_chunks = [None] * frames if pose_images is None else pose_images.split(frame_chunk_size)
                    for chunk, poses_chunk in zip(model_input.split(frame_chunk_size), pose_chunks):
                        chunks.append(
                            image_guidance(
                                lambda: model(chunk, t, context, pose_images=poses_chunk, reference_features=features),
                                lambda: model(chunk, t, context),
                                scale,
                            )
                        )
                        progress.update(chunk.shape[0])
                    noise_pred = torch.cat(chunks)
                at = step_timestep(self.scheduler, t, step)
                latents = self.scheduler.step(noise_pred.float(), at, latents, **step_kwargs, return_dict=False)[0]
        return latents

    @torch.no_grad()
    def __call__(
        self,
        reference_image: PIL.Image.Image | np.ndarray | torch.Tensor | None,
        poses,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        height: int | None = None,
        width: int | None = None,
        latents: torch.Tensor | None = None,
        eta: float = 0.0,
        prompt: str | None = None,
        frame_chunk_size: int = 16,
        window_frames: int | None = None,
        window_overlap: int | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        start_from_reference: bool | None = None,
        guidance_interval: tuple[float, float] | None = None,
    ) -> MagicPosePipelineOutput | tuple:
        """Generate one frame per pose: the reference person performing the poses.

        Args:
            reference_image: the person to animate (PIL image, HxWx3 uint8 array, or (1, 3, H, W) in [-1, 1]).
                None runs without the appearance branch (pose ControlNet only: an ablation baseline).
            poses: N pose conditions: OpenPose renderings (PIL images, HxWx3 uint8 arrays, or an
                (N, 3, H, W) tensor in [0, 1]) or a `magicpose.poses.PoseSequence`.
            num_inference_steps: denoising steps (default: the model's `config.num_inference_steps`;
                official: 50).
            guidance_scale: image classifier-free guidance weight w in eps_u + w (eps_c - eps_u), where eps_u
                is the plain base UNet (no reference, no pose); 1 switches guidance off (default: the
                model's `config.guidance_scale`; official: 7).
            generator: seeds the initial noise, which is one draw shared by every frame (official: seed 42).
            height, width: output size in pixels (multiples of the VAE factor); default: the UNet's native size.
            latents: initial noise to use instead of a draw, (1 or N, 4, h, w).
            eta: DDIM eta (official: 0).
            prompt: optional text prompt; the official model conditions on the empty prompt.
            frame_chunk_size: frames per network call; lower it on small GPUs. With a motion module a
                window still forms one clip, but its spatial layers and the pose ControlNet take at most
                this many frames at a time. The result does not depend on it.
            window_frames, window_overlap: with a motion module, the clip length and overlap of the
                sliding windows that cover videos of any length (default: the model's; AnimateDiff: 16 and 4).
            output_type: "pil", "np" or "pt".
            start_from_reference: start from the reference's latents noised to the first timestep, as
                img2img at strength 1 does, instead of from pure noise (default: the model's
                `config.start_from_reference`; ignored without a reference). SD's noise schedule leaves
                sqrt(alpha_bar_t) >= 0.068 of the image in its noisiest training inputs (0.085 at the
                first of 25 official steps), so a UNet learns to read the image's low frequencies, its
                mean colour above all, from its input; pure noise carries none and samples drift to grey
                (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Sec. 2).
                The reference shares the target's scene and person, so its noised latents come close to
                the input training saw.
            guidance_interval: (low, high) training timesteps: guidance only at sampling timesteps t with
                low < t <= high, the conditional model alone elsewhere (Kynkäänniemi et al. 2024). Default:
                the model's `config.guidance_interval`; None there (as the official code) guides every step.
        Returns:
            `MagicPosePipelineOutput` with N frames (or a tuple holding the frames).
        """
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")
        if frame_chunk_size < 1:
            raise ValueError("frame_chunk_size must be at least 1")
        device, dtype = self._execution_device, self.unet.dtype

        latent_size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        pose_images = self.prepare_poses(poses, *(side * self.pose_scale_factor for side in latent_size))
        reference_latents = None
        if reference_image is not None:
            reference = self.image_processor.preprocess(unit_float(reference_image), height=height, width=width)[:1]
            reference_latents = self.encode_reference(reference).to(dtype)
        context = self.encode_context(prompt)

        if latents is None:
            latent_shape = (1, self.unet.config.in_channels, *latent_size)
            latents = randn_tensor(latent_shape, generator=generator, device=device, dtype=torch.float32)
        latents = self.denoise(
            latents.to(device, dtype),
            reference_latents,
            pose_images,
            context,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            eta=eta,
            generator=generator,
            frame_chunk_size=frame_chunk_size,
            window_frames=window_frames,
            window_overlap=window_overlap,
            start_from_reference=start_from_reference if reference_latents is not None else False,  # None: the model's
            guidance_interval=guidance_interval,
        )

        if output_type == "latent":
            images = latents
        else:
            images = self.decode_latents(latents, frame_chunk_size)
            images = self.image_processor.postprocess(images, output_type=output_type)
        self.maybe_free_model_hooks()
        return MagicPosePipelineOutput(frames=images) if return_dict else (images,)
