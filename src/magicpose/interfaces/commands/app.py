"""`magicpose app`: the web page (Gradio) for animating a photo with a driving video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from magicpose.errors import InputError, MissingWeightsError


def register(subparsers) -> None:
    from magicpose.interfaces.commands.animate import add_model_arguments

    parser = subparsers.add_parser("app", help="serve the web app (Gradio) on a local port", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest accepted upload, per file")
    parser.add_argument("--max-frames", type=int, default=64, help="longest accepted driving video, in frames")
    parser.add_argument("--steps", type=int, help="the page's default number of denoising steps "
                        "(default: 50, or the embedded model's 20)")
    parser.add_argument("--guidance", type=float, help="the page's default image guidance scale "
                        "(default: 7, or the embedded model's own)")
    parser.add_argument("--cache-dir", type=Path, help="where examples and results go (default: a temp folder)")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def model_problem(args: argparse.Namespace) -> str | None:
    """Why no model can be loaded (checked at start-up, so the page and the terminal both say it), or None."""
    if args.model or args.official:
        path = Path(args.model or args.official)
        return None if path.exists() else f"the model {path} does not exist; pass --model FOLDER"
    from magicpose.models.default import default_model_folder

    try:
        default_model_folder()
    except MissingWeightsError as error:
        return f"No model: {error}. Previews work; generating needs a model."
    return None


def run(args: argparse.Namespace) -> int:
    from magicpose.interfaces.app import AppConfig, build_app
    from magicpose.interfaces.commands.animate import load_pipeline_from_args, sampling_settings

    steps, guidance = sampling_settings(args)
    if args.max_upload_mb <= 0 or args.max_frames < 1 or steps < 1:
        raise InputError("--max-upload-mb, --max-frames and --steps must be positive")
    problem = model_problem(args)
    if problem:
        print(f"magicpose app: warning: {problem}", file=sys.stderr)
    config = AppConfig(load_pipeline=lambda: load_pipeline_from_args(args), max_upload_mb=args.max_upload_mb,
                       max_frames=args.max_frames, default_steps=steps, default_guidance=guidance)  # fmt: skip
    if args.cache_dir:
        config.cache_dir = args.cache_dir
    demo = build_app(config, startup_message=problem)
    demo.launch(
        server_name=args.host, server_port=args.port, max_file_size=f"{args.max_upload_mb:g}mb",
        allowed_paths=[str(config.cache_dir)], show_error=True,
    )  # fmt: skip
    return 0
