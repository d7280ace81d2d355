"""`MagicPosePipeline`: animate a reference photo with a sequence of poses (a diffusers pipeline)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DiffusionPipeline,
    MotionAdapter,
    StableDiffusionMixin,
    UNet2DConditionModel,
)
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from magicpose.models.appearance_control import AppearanceControlModel
from magicpose.models.magicpose_model import MagicPoseModel
from magicpose.models.motion_module import (
    base_unet_of,
    build_motion_unet,
    extract_motion_adapter,
    is_motion_unet,
    tie_motion_adapter,
)
from magicpose.models.pose_hints import reuse_pose_hints
from magicpose.models.text_context import TextContext, encode_prompt
from magicpose.pipelines.image_guidance import guidance_scale_at
from magicpose.pipelines.offload import OffloadPlan, decode_batch, phase, reference_banks
from magicpose.pipelines.recipe import RECIPE_KEYS, check_recipe
from magicpose.pipelines.saved_folder import name_pipeline_class, own_class_name
from magicpose.pipelines.schedulers import step_timestep
from magicpose.pipelines.windows import frame_chunks, guided_step_epsilon, sliding_windows
from magicpose.poses.render import draw_openpose
from magicpose.poses.types import PoseSequence


def unit_float(image):
    """uint8 arrays as float32 in [0, 1]: diffusers' image processor takes numpy images in [0, 1] and
    would otherwise feed 0..255 to the networks (PIL images and tensors pass through unchanged; lists
    are converted element by element)."""
    if isinstance(image, list):
        return [unit_float(item) for item in image]
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image


@dataclass
class MagicPosePipelineOutput(BaseOutput):
    """`frames`, one video per reference and per `num_videos_per_prompt`, as diffusers' video pipelines
    return them: a list of videos, each a list of N PIL images ("pil"); a (videos, N, H, W, 3) float array
    in [0, 1] ("np"); a (videos, N, 3, H, W) tensor in [0, 1] ("pt"); (videos, N, 4, h, w) latents ("latent")."""

    frames: list[list[PIL.Image.Image]] | np.ndarray | torch.Tensor


class MagicPosePipeline(DiffusionPipeline, StableDiffusionMixin):
    """Pose and expression retargeting with MagicPose (frozen SD-1.5 UNet + appearance and pose control).

    Components: `unet` (frozen base UNet), `appearance_control` (Appearance Control Model),
    `pose_control` (Pose ControlNet), `vae`, `text_context` (the empty prompt's embedding), `scheduler`
    (the official DDIM by default; any diffusers scheduler can be swapped in), and optionally
    `text_encoder` + `tokenizer` for text prompts and `motion_adapter` (a diffusers `MotionAdapter`:
    the base UNet then becomes a motion UNet holding it, and the folder stores both parts apart).

    A model folder owns its sampling recipe: the scheduler component and, in model_index.json,
    `num_inference_steps`, `guidance_scale`, `guidance_interval`, `start_from_reference`,
    `window_frames` and `window_overlap`, the defaults of `__call__`. The constructor's defaults are
    the official recipe (DDIM, 50 steps, guidance 7, pure noise, 16-frame windows overlapping by 4).
    """

    model_cpu_offload_seq = "text_encoder->appearance_control->pose_control->unet->vae"
    _optional_components = ["text_encoder", "tokenizer", "motion_adapter"]
    # A 236 KB buffer with no parameters: accelerate's offload hook cannot place it (it looks for a
    # parameter), and it is moved to the execution device per call anyway. The motion adapter's layers
    # are the motion UNet's own (`tie_motion_adapter`): the UNet's offload hook moves them.
    _exclude_from_cpu_offload = ["text_context", "motion_adapter"]
    _callback_tensor_inputs = ["latents", "noise_pred"]

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
        motion_adapter: MotionAdapter | None = None,
        start_from_reference: bool = False,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.0,
        guidance_interval: tuple[float, float] | None = None,
        window_frames: int = 16,
        window_overlap: int = 4,
    ):
        super().__init__()
        if motion_adapter is not None and not is_motion_unet(unet):
            unet = build_motion_unet(unet, motion_adapter)
        if is_motion_unet(unet):
            motion_adapter = tie_motion_adapter(motion_adapter or extract_motion_adapter(unet), unet)
        self.register_modules(
            vae=vae,
            unet=unet,
            appearance_control=appearance_control,
            pose_control=pose_control,
            text_context=text_context,
            scheduler=scheduler,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            motion_adapter=motion_adapter,
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
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor)
        self._interrupt = False
        self._num_timesteps = 0

    @property
    def interrupt(self) -> bool:
        """Set `pipe._interrupt = True` (in a `callback_on_step_end`) to skip the remaining steps."""
        return self._interrupt

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @classmethod
    def load_config(cls, *args, **kwargs):
        """As diffusers', but a folder naming this class as [file, class] (for `DiffusionPipeline`) loads
        without running the folder's file: this class is here already."""
        loaded = super().load_config(*args, **kwargs)
        own_class_name(loaded[0] if isinstance(loaded, tuple) else loaded, cls.__name__)
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        """diffusers' folder, with a motion UNet stored as its two parts (`unet/` the 2-D UNet,
        `motion_adapter/` the temporal layers) and model_index.json naming magicpose as the library that
        holds the pipeline (`saved_folder`)."""
        motion_unet = self.unet if is_motion_unet(self.unet) else None
        if motion_unet is not None:
            self.unet = base_unet_of(motion_unet)  # shares the weights: nothing is copied
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            if motion_unet is not None:
                self.unet = motion_unet
        name_pipeline_class(save_directory)

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
        """The three networks wired together, built once per set of networks; it holds no weights of its
        own. Attention processors a user sets afterwards are wrapped at the next use (`MagicPoseModel.connect`)."""
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
        generator: torch.Generator | list[torch.Generator] | None = None,
        frame_chunk_size: int = 16,
        window_frames: int | None = None,
        window_overlap: int | None = None,
        start_from_reference: bool | None = None,
        guidance_interval: tuple[float, float] | None = None,
        videos: int | None = None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
    ) -> torch.Tensor:
        """The sampling loop in latent space: `videos` videos of N frames from initial noise
        (1 or videos x N, 4, h, w), returned as (videos x N, 4, h, w), video-major.

        Per step and video: one appearance pass for all its frames, then one sampling step
        (`windows.guided_step_epsilon`) over chunks of frames (2-D UNet) or overlapping windows of
        `window_frames` (motion UNet), then one scheduler step for all videos.
        `reference_latents`: (1 or N, 4, h, w) for one video (one for every frame, or one per frame), (1 or
        videos, 4, h, w) for several (one per video, or one for all); None switches
        the appearance branch off: the base UNet with the pose ControlNet alone (the first row of the
        paper's ablation, Table 3); `pose_images=None` too: the plain base UNet, N = the latents' batch (a
        prerequisite stage's prior). `start_from_reference`
        mixes the reference latents into the initial noise as the scheduler's forward process does at the
        first timestep (`add_noise`); True needs `reference_latents`, None follows the model's setting where
        there is a reference. Settings left None come from the model's recipe (`__call__`).
        `callback_on_step_end(pipe, i, t, {name: tensor})` runs after each step, as in diffusers.
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
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs {sorted(unknown)}: use {self._callback_tensor_inputs}"
            )
        videos = videos or 1
        if reference_latents is None:
            references = [None] * videos
        elif videos == 1:
            references = [reference_latents]  # one for every frame, or one per frame
        elif reference_latents.shape[0] in (1, videos):
            references = list(reference_latents.expand(videos, -1, -1, -1).split(1))
        else:
            raise ValueError(f"{reference_latents.shape[0]} reference latents for {videos} videos")
        frames = latents.shape[0] // videos if pose_images is None else pose_images.shape[0]
        if latents.shape[0] not in (1, videos * frames):
            raise ValueError(f"{latents.shape[0]} initial latents for {videos} video(s) of {frames} frames")
        latents = latents.expand(videos * frames, -1, -1, -1) if latents.shape[0] == 1 else latents
        # Latents and the scheduler's arithmetic in float32 whatever the networks' dtype: half-precision
        # updates of x_t would round at every step; the networks still get their own dtype.
        latents = latents.to(torch.float32, copy=True)
        self.scheduler.set_timesteps(recipe["num_inference_steps"], device=latents.device)
        if start_from_reference:
            if reference_latents is None:
                raise ValueError("start_from_reference needs reference latents")
            reference = torch.cat([r.to(latents.dtype).expand(frames, -1, -1, -1) for r in references])
            latents = self.scheduler.add_noise(reference, latents, self.scheduler.timesteps[:1])
        else:
            latents = latents * self.scheduler.init_noise_sigma
        if isinstance(generator, list):  # one per video; the scheduler draws per frame
            generator = generator[0] if len(generator) == 1 else [g for g in generator for _ in range(frames)]
        step_parameters = inspect.signature(self.scheduler.step).parameters
        step_kwargs = {key: value for key, value in (("eta", eta), ("generator", generator)) if key in step_parameters}
        if is_motion_unet(self.unet):  # frames of a clip attend to each other: overlapping windows, blended
            groups, overlap = (
                sliding_windows(frames, recipe["window_frames"], recipe["window_overlap"]),
                recipe["window_overlap"],
            )
        else:
            groups, overlap = frame_chunks(frames, frame_chunk_size), 0

        model = self.model
        timesteps = self.scheduler.timesteps
        self._num_timesteps, self._interrupt = len(timesteps), False
        with model.attached():
            # The reference branch does not depend on the frame: one pass per step serves a whole video.
            banks = [
                reference_banks(model, reference, timesteps, context, self.offload_plan) for reference in references
            ]
            # One bar over frames x steps, so long videos show their rate in frames per second.
            with (
                phase(self.offload_plan, self.unet, self.pose_control),
                reuse_pose_hints(self.pose_control),
                self.progress_bar(total=len(timesteps) * frames * videos) as progress,
            ):
                progress.unit = "frame-step"
                # The timesteps read once as numbers: DDIM's tables and the guidance interval then take
                # Python ints, and no step waits for the device (a tensor index is a host sync).
                for i, (t, step) in enumerate(zip(timesteps, timesteps.tolist())):
                    if self.interrupt:
                        continue
                    scale = guidance_scale_at(step, recipe["guidance_scale"], recipe["guidance_interval"])
                    model_input = self.scheduler.scale_model_input(latents, t).to(self.unet.dtype)
                    noise_pred = torch.cat(
                        [
                            guided_step_epsilon(
                                model,
                                model_input[video * frames : (video + 1) * frames],
                                t,
                                context,
                                pose_images,
                                next(bank),
                                scale,
                                groups,
                                overlap,
                                frame_chunk_size=frame_chunk_size,
                            )
                            for video, bank in enumerate(banks)
                        ]
                    )
                    at = step_timestep(self.scheduler, t, step)
                    latents = self.scheduler.step(noise_pred.float(), at, latents, **step_kwargs, return_dict=False)[0]
                    if callback_on_step_end is not None:
                        values = {"latents": latents, "noise_pred": noise_pred}
                        outputs = callback_on_step_end(
                            self, i, t, {name: values[name] for name in callback_on_step_end_tensor_inputs}
                        )
                        latents = outputs.pop("latents", latents)
                    progress.update(frames * videos)
        return latents

    @torch.no_grad()
    def __call__(
        self,
        reference_image: PIL.Image.Image | np.ndarray | torch.Tensor | list | None,
        poses,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
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
        num_videos_per_prompt: int = 1,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
    ) -> MagicPosePipelineOutput | tuple:
        """Generate one video per reference (times `num_videos_per_prompt`), one frame per pose: the
        reference person performing the poses.

        Args:
            reference_image: the person to animate: a PIL image, an HxWx3 uint8 array, a (1, 3, H, W) tensor in
                [-1, 1], or several (a list of those, a (R, H, W, 3) array, a (R, 3, H, W) tensor): one video
                each. None runs without the appearance branch (pose ControlNet only: an ablation baseline).
            poses: N pose conditions, shared by every video: OpenPose renderings (PIL images, HxWx3 uint8
                arrays, or an (N, 3, H, W) tensor in [0, 1]) or a `magicpose.poses.PoseSequence`.
            num_inference_steps: denoising steps (default: the model's `config.num_inference_steps`;
                official: 50).
            guidance_scale: image classifier-free guidance weight w in eps_u + w (eps_c - eps_u), where eps_u
                is the plain base UNet (no reference, no pose); 1 switches guidance off (default: the
                model's `config.guidance_scale`; official: 7).
            generator: seeds the initial noise, one draw per video shared by its frames (official: seed 42);
                a list holds one generator per video, so video k equals a single call with generator k.
            height, width: output size in pixels (multiples of the VAE factor); default: the UNet's native size.
            latents: initial noise to use instead of a draw, (1, videos or videos x N, 4, h, w).
            eta: DDIM eta (official: 0).
            prompt: optional text prompt; the official model conditions on the empty prompt.
            frame_chunk_size: frames per network call; lower it on small GPUs. With a motion module a
                window still forms one clip, but its spatial layers and the pose ControlNet take at most
                this many frames at a time. The result does not depend on it.
            window_frames, window_overlap: with a motion module, the clip length and overlap of the
                sliding windows that cover videos of any length (default: the model's; AnimateDiff: 16 and 4).
            output_type: "pil", "np", "pt" or "latent" (shapes: `MagicPosePipelineOutput`).
            start_from_reference: start from the reference's latents noised to the first timestep, as
                img2img at strength 1 does, instead of from pure noise (default: the model's
                `config.start_from_reference`; ignored without a reference; why: docs/architecture.md).
            guidance_interval: (low, high) training timesteps: guidance only at sampling timesteps t with
                low < t <= high, the conditional model alone elsewhere (Kynkäänniemi et al. 2024). Default:
                the model's `config.guidance_interval`; None there (as the official code) guides every step.
            num_videos_per_prompt: videos per reference, each from its own noise.
            callback_on_step_end, callback_on_step_end_tensor_inputs: as in diffusers: called after every
                step with the named tensors ("latents", "noise_pred"); a returned "latents" replaces them.
                Setting `pipe._interrupt = True` there skips the remaining steps.
        Returns:
            `MagicPosePipelineOutput` (or a tuple holding the frames).
        """
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")
        if frame_chunk_size < 1 or num_videos_per_prompt < 1:
            raise ValueError("frame_chunk_size and num_videos_per_prompt must be at least 1")
        device, dtype = self._execution_device, self.unet.dtype

        latent_size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        pose_images = self.prepare_poses(poses, *(side * self.pose_scale_factor for side in latent_size))
        frames, reference_latents = pose_images.shape[0], None
        if reference_image is not None:
            reference = self.image_processor.preprocess(unit_float(reference_image), height=height, width=width)
            reference_latents = self.encode_reference(reference).to(dtype)
            reference_latents = reference_latents.repeat_interleave(num_videos_per_prompt, dim=0)
        videos = num_videos_per_prompt if reference_latents is None else reference_latents.shape[0]
        if isinstance(generator, list) and len(generator) != videos:
            raise ValueError(f"{len(generator)} generators for {videos} videos: pass one, or one per video")
        context = self.encode_context(prompt)

        if latents is None:
            latent_shape = (videos, self.unet.config.in_channels, *latent_size)
            latents = randn_tensor(latent_shape, generator=generator, device=device, dtype=torch.float32)
        if latents.shape[0] == videos > 1:
            latents = latents.repeat_interleave(frames, dim=0)  # one draw per video, shared by its frames
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
            videos=videos,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )

        if output_type == "latent":
            video = latents.unflatten(0, (videos, frames))
        else:
            images = self.decode_latents(latents, frame_chunk_size).unflatten(0, (videos, frames))
            video = self.video_processor.postprocess_video(images.transpose(1, 2), output_type=output_type)
        self.maybe_free_model_hooks()
        return MagicPosePipelineOutput(frames=video) if return_dict else (video,)
