"""`magicpose train CONFIG.yaml [--resume] [section.key=value ...]`: run one training stage.

Several processes (GPUs or machines) through accelerate's launcher:
    accelerate launch --multi_gpu --num_processes 8 -m magicpose.interfaces.cli train CONFIG.yaml
"""

from __future__ import annotations

import argparse
import shlex
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a stage (vae, base_unet, controlnet, appearance, pose)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="YAML config (see configs/)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output.dir")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.max_steps=100")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from magicpose.training.checkpointing import TrainingDiverged
    from magicpose.training.config import load_config
    from magicpose.training.trainer import TrainingInterrupted, train

    config = load_config(args.config, args.overrides)
    try:
        train(config, resume=args.resume)
    except TrainingDiverged as error:
        print(f"magicpose train: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as stop:
        overrides = "".join(f" {shlex.quote(item)}" for item in args.overrides)
        print(
            f"magicpose train: interrupted after step {stop.step}; saved {stop.checkpoint}. Continue with: "
            f"magicpose train {shlex.quote(str(args.config))} --resume{overrides}",
            file=sys.stderr,
        )
        return 128 + stop.signal_number
    return 0
