"""`magicpose app`: the web page (Gradio) for animating a photo with a driving video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from magicpose.errors import InputError, MissingWeightsError
from magicpose.interfaces.options import add_model_arguments, load_from_args, model_source
from magicpose.pipelines.recipe import check_recipe


def register(subparsers) -> None:
    parser = subparsers.add_parser("app", help="serve the web app (Gradio) on a local port", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest accepted upload, per file")
    parser.add_argument("--max-frames", type=int, default=64, help="longest accepted driving video, in frames")
    parser.add_argument(
        "--steps", type=int, help="the page's initial number of denoising steps (default: the model's own)"
    )
    parser.add_argument(
        "--guidance", type=float, help="the page's initial image guidance scale (default: the model's own)"
    )
    parser.add_argument("--cache-dir", type=Path, help="where examples and results go (default: a temp folder)")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def model_problem(args: argparse.Namespace) -> str | None:
    """Why no model can be loaded (checked at start-up, so the page and the terminal both say it), or None."""
    source = model_source(args)
    if source:
        return None if Path(source).exists() else f"the model {source} does not exist; pass --model FOLDER"
    from magicpose.models.default import default_model_folder

    try:
        default_model_folder()
    except MissingWeightsError as error:
        return f"No model: {error}. Previews work; generating needs a model."
    return None


def run(args: argparse.Namespace) -> int:
    from magicpose.interfaces.app import AppConfig
    from magicpose.interfaces.app_page import build_app, launch
    from magicpose.models.default import EMBEDDED_MODEL_NOTE
    from magicpose.pipelines.assembly import sampling_recipe

    if args.max_upload_mb <= 0 or args.max_frames < 1:
        raise InputError("--max-upload-mb and --max-frames must be positive")
    check_recipe(num_inference_steps=args.steps, guidance_scale=args.guidance)
    problem = model_problem(args)
    if problem:
        print(f"magicpose app: warning: {problem}", file=sys.stderr)
    recipe = sampling_recipe(model_source(args)) if not problem else {}
    config = AppConfig(
        load_pipeline=lambda: load_from_args(args),
        max_upload_mb=args.max_upload_mb,
        max_frames=args.max_frames,
        default_steps=args.steps or recipe.get("num_inference_steps", 50),
        default_guidance=args.guidance if args.guidance is not None else recipe.get("guidance_scale", 7.0),
        model_note=EMBEDDED_MODEL_NOTE if model_source(args) is None else None,
    )
    if args.cache_dir:
        config.cache_dir = args.cache_dir
    demo = build_app(config, startup_message=problem)
    launch(
        demo,
        server_name=args.host,
        server_port=args.port,
        max_file_size=f"{args.max_upload_mb:g}mb",
        allowed_paths=[str(config.cache_dir)],
        show_error=True,
    )
    return 0
