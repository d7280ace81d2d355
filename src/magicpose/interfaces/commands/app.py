"""`magicpose app`: the web page (Gradio) for animating a photo with a driving video."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
from pathlib import Path

from magicpose.errors import InputError, MissingWeightsError
from magicpose.interfaces.options import add_model_arguments, check_output, load_from_args, model_source
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
    parser.add_argument(
        "--keep-results", type=int, default=20, help="results kept in the cache: the newest N (default 20)"
    )
    parser.add_argument(
        "--keep-hours", type=float, default=24.0, help="and none older than this many hours (default 24)"
    )
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def check_port(host: str, port: int) -> None:
    """Refuse, with one line, an address this server could not listen on, before the slow start-up (Gradio
    fails only after it, with a traceback). Binds as Gradio (127.0.0.1 first) and uvicorn (the host) will."""
    if not 1 <= port <= 65535:
        raise InputError(f"--port must be from 1 to 65535, got {port}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    for address in dict.fromkeys(("127.0.0.1", host)):
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except socket.gaierror:
                raise InputError(f"--host {host} is not a known address; pass 127.0.0.1 or 0.0.0.0") from None
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise InputError(f"port {port} is in use (another server?); pass a free --port") from None
                if error.errno == errno.EACCES:
                    raise InputError(
                        f"port {port} needs administrator rights (ports below 1024); pass --port 1024 or above"
                    ) from None
                raise InputError(
                    f"cannot listen on {address} port {port} ({error.strerror}); pass another --host or --port"
                ) from None


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
    # everything the user can get wrong, before the slow part (torch, the model's recipe, Gradio: ~45 s)
    check_port(args.host, args.port)
    if args.max_upload_mb <= 0 or args.max_frames < 1:
        raise InputError("--max-upload-mb and --max-frames must be positive")
    if args.keep_results < 1 or not args.keep_hours > 0:
        raise InputError("--keep-results and --keep-hours must be positive")
    check_recipe(num_inference_steps=args.steps, guidance_scale=args.guidance)
    if args.cache_dir:
        args.cache_dir = check_output(args.cache_dir, "--cache-dir", folder=True)

    from magicpose.interfaces.app import AppConfig, prune_results
    from magicpose.interfaces.app_page import build_app, launch
    from magicpose.models.default import EMBEDDED_MODEL_NOTE
    from magicpose.pipelines.assembly import sampling_recipe

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
        keep_results=args.keep_results,
        keep_hours=args.keep_hours,
    )
    if args.cache_dir:
        config.cache_dir = args.cache_dir
    demo = build_app(config, startup_message=problem)
    try:
        launch(
            demo,
            server_name=args.host,
            server_port=args.port,
            max_file_size=f"{args.max_upload_mb:g}mb",
            allowed_paths=[str(config.cache_dir)],
            show_error=True,
        )
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM (the CLI turns it into this), the server closed
        # A generation may be running in a worker thread, inside torch or mediapipe: the interpreter would wait
        # for it (minutes) and then abort in their native threads' teardown (SIGABRT, not 143). Leave at once.
        number = int(interrupt.args[0]) if interrupt.args else int(signal.SIGINT)
        prune_results(config.cache_dir, config.keep_results, config.keep_hours)  # the dropped job's files too
        print("magicpose app: interrupted; the server is stopped, a generation in progress dropped", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(128 + number)
    except OSError as error:  # the port was taken during the start-up, after check_port
        if "port" not in str(error):
            raise
        raise InputError(f"port {args.port} was taken while the app started; pass a free --port") from None
    return 0
