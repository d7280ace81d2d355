"""Command-line options shared by the commands that generate (`animate`, `demo`, `evaluate --puppet`,
`app`): which weights, on which device, and overrides of the model's own sampling recipe.

Nothing here holds a sampling default: an option left out means "the model's own" (its folder's
model_index.json), which `magicpose.load` brings with the pipeline. Only argparse is imported at the
top, so `magicpose --help` does not load torch.
"""

from __future__ import annotations

import argparse
import math
import os

from magicpose.errors import InputError
from magicpose.files import check_output  # noqa: F401 (the commands' import; its home is magicpose.files)
from magicpose.pipelines.recipe import SCHEDULER_NAMES, check_recipe

DTYPE_NAMES = ("auto", "float32", "float16", "bfloat16")


# The largest output side: 2048 px is 16x SD-1.5's native pixels per frame; a user who needs more raises it.
MAX_SIZE_VARIABLE = "MAGICPOSE_MAX_SIZE"
DEFAULT_MAX_SIZE = 2048


def max_size() -> int:
    try:
        return int(os.environ.get(MAX_SIZE_VARIABLE, DEFAULT_MAX_SIZE))
    except ValueError:
        return DEFAULT_MAX_SIZE


def parse_size(text: str) -> tuple[int, int]:
    """ "512" or "512x768" (width x height), each side from 8 to `max_size()`."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512 or 512x768, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"size must look like 512 or 512x768, got {text!r}")
    if min(parts) < 8 or max(parts) > max_size():
        raise argparse.ArgumentTypeError(
            f"each side must be from 8 to {max_size()} pixels, got {text} (set {MAX_SIZE_VARIABLE} for larger)"
        )
    return parts[0], parts[1]


def add_model_arguments(parser: argparse.ArgumentParser, official: bool = True) -> None:
    """--model and friends, --device, --dtype, --cpu-offload, --vae-tiling, the motion module, --scheduler."""
    group = parser.add_argument_group("weights and hardware")
    group.add_argument(
        "--model",
        help="a model folder (from `magicpose convert` or a training export) or an official "
        "checkpoint file (default: the embedded puppet model)",
    )
    if official:
        group.add_argument(
            "--official",
            help="the official checkpoint model_state-*.th, converted on the fly (the same as --model FILE)",
        )
        group.add_argument(
            "--official-config", help="official-format YAML for an official checkpoint (default: SD-1.5 size)"
        )
        group.add_argument("--sd15", help="SD-1.5 folder; with an official checkpoint it supplies the tokenizer")
    group.add_argument(
        "--device", default="auto", help="auto (the first GPU when there is one), cpu, cuda, cuda:1, ..."
    )
    group.add_argument(
        "--dtype", default="auto", choices=DTYPE_NAMES, help="auto: float16 on a GPU, float32 on the CPU"
    )
    group.add_argument(
        "--cpu-offload",
        action="store_true",
        help="small GPUs: each network on the GPU for its phase only, none moved inside the denoising loop",
    )
    group.add_argument(
        "--vae-tiling", action="store_true", help="decode frames tile by tile (large frames, small GPUs)"
    )
    group.add_argument(
        "--motion-adapter",
        help="AnimateDiff v2 motion module (.ckpt or MotionAdapter folder): temporal "
        "layers in the base UNet, long videos in overlapping windows (default: the model folder's own "
        "motion_adapter/, as the embedded model has)",
    )
    group.add_argument(
        "--no-motion-module",
        action="store_true",
        help="leave the model folder's own motion module out: every frame denoised on its own",
    )
    group.add_argument(
        "--scheduler",
        choices=SCHEDULER_NAMES,
        help="sampler over the model's noise schedule (default: the model's own)",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Overrides of the model's sampling recipe; each defaults to the model's own."""
    group = parser.add_argument_group(
        "sampling (default: the model's own recipe; `magicpose demo --help` for the embedded one)"
    )
    group.add_argument("--steps", type=int, help="denoising steps (official model: 50; embedded model: 10)")
    group.add_argument("--guidance", type=float, help="image guidance scale, 1 = off (official: 7; embedded: 3)")
    group.add_argument(
        "--guidance-interval",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="guide only at sampling timesteps t with LOW < t <= HIGH (of 1000), the conditional model "
        "alone elsewhere (Kynkäänniemi et al. 2024)",
    )
    group.add_argument(
        "--start-from-reference",
        action=argparse.BooleanOptionalAction,
        help="start sampling from the noised reference instead of pure noise: keeps the background's "
        "colours (on for the embedded model, off for the official one)",
    )
    group.add_argument("--window", type=int, metavar="FRAMES", help="with a motion module: frames per window (16)")
    group.add_argument("--window-overlap", type=int, metavar="FRAMES", help="with a motion module: window overlap (4)")
    group.add_argument(
        "--frame-chunk",
        type=int,
        default=16,
        help="frames per network call, with or without a motion module; lower it on small GPUs "
        "(the result does not change) (default: %(default)s)",
    )


def model_source(args: argparse.Namespace):
    """The weights named on the command line: a folder, an official file, or None (the embedded model)."""
    model, official = getattr(args, "model", None), getattr(args, "official", None)
    if model and official:
        raise InputError("pass either --model or --official, not both")
    return model or official


def load_from_args(args: argparse.Namespace):
    """`magicpose.load` with the command's weights and hardware options."""
    from magicpose.pipelines.assembly import load

    return load(
        model_source(args),
        device=args.device,
        dtype=args.dtype,
        motion_adapter=args.motion_adapter,
        motion_module=not args.no_motion_module,
        scheduler=args.scheduler,
        cpu_offload=args.cpu_offload,
        vae_tiling=args.vae_tiling,
        official_config=getattr(args, "official_config", None),
        sd15=getattr(args, "sd15", None),
    )


# The command-line option of each recipe setting, for messages.
RECIPE_OPTIONS = {
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance",
    "start_from_reference": "--start-from-reference",
    "guidance_interval": "--guidance-interval",
    "window_frames": "--window",
    "window_overlap": "--window-overlap",
}


def sampling_overrides(args: argparse.Namespace) -> dict:
    """The sampling options given, as `MagicPosePipeline.__call__` keywords (those left out: the model's).

    Checks them, and the device and dtype, so that a bad value stops the command before any heavy work.
    """
    from magicpose.pipelines.assembly import resolve_device, resolve_dtype

    resolve_dtype(args.dtype, resolve_device(args.device))

    overrides = dict(
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        start_from_reference=args.start_from_reference,
        guidance_interval=tuple(args.guidance_interval) if args.guidance_interval else None,
        window_frames=args.window,
        window_overlap=args.window_overlap,
    )
    for key, value in overrides.items():  # one at a time, so the message names the option given
        try:
            check_recipe(**{key: value}, **({"window_frames": args.window} if key == "window_overlap" else {}))
        except InputError as error:
            raise InputError(f"{RECIPE_OPTIONS[key]}: {error}") from None
    if args.frame_chunk < 1:
        raise InputError(f"--frame-chunk must be at least 1, got {args.frame_chunk}")
    return {key: value for key, value in overrides.items() if value is not None}


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0 (frame rates, scales)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text}")
    return value


def check_seed(value: int) -> int:
    """A seed torch can take (0 to 2**63 - 1), or an InputError: the CLI's --seed and the app's seed."""
    if not 0 <= value < 2**63:
        raise InputError(f"a seed is from 0 to 2**63 - 1, got {value}")
    return value


def seed(text: str) -> int:
    """An argparse type: a seed torch can take."""
    try:
        return check_seed(int(text))
    except ValueError as error:  # InputError is a ValueError
        message = str(error) if isinstance(error, InputError) else f"expected a whole number, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def add_strict_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop when a video decodes only in part (fewer frames than its header declares) instead of warning",
    )


def person_argument(text: str) -> str | int:
    """An argparse type for --person: largest, center, or the 0-based index of a person on the first frame
    with anyone (checked here without importing the tracker, so that --help stays light)."""
    try:
        return check_person(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def check_person(value) -> str | int:
    """Who drives, as the CLI and the app take it: largest, center or a 0-based index from the left."""
    text = str(value).strip().lower()
    if text in ("largest", "center"):
        return text
    if not text.isdigit():
        raise InputError(f"who drives must be largest, center or an index from 0 (left to right), got {value!r}")
    return int(text)


def add_alignment_arguments(parser, offset_unit: str) -> None:
    """--align-scale, --align-offset and --align-frame: corrections to the automatic retargeting."""
    parser.add_argument(
        "--align-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="times the automatic size of the body (1)",
    )
    parser.add_argument(
        "--align-offset",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("DX", "DY"),
        help=f"move the aligned body by DX, DY {offset_unit} (0 0)",
    )
    parser.add_argument(
        "--align-frame",
        type=int,
        metavar="N",
        help="the driving frame (0-based; in animate counted from --start) whose body stands for the driver's "
        "and whose neck goes to the reference's (default: bone lengths typical over the video, the neck's first "
        "sighting)",
    )
