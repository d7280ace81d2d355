"""Peak memory of `magicpose convert` on a random-weight checkpoint in the official layout.

    python benchmarks/bench_convert_memory.py [--size full|small] [--formats th safetensors]
                                              [--dtype float32] [--workdir DIR] [--keep]

`--size full` (default) has every key and shape of ../shared/reference/magicdance/full_keys.json
(2.29 G parameters, 9.2 GB in float32, CLIP text encoder included) and needs about 3x that on disk
(the .safetensors it is built from, the .th, the converted folder) for a few minutes. `--size small`
is the tiny reference model's layout plus a small CLIP text encoder: a check that runs in seconds.
Each format is built, converted by `magicpose convert` in a subprocess, measured and deleted.

Printed per format: the peak resident memory of the convert process (/usr/bin/time's maximum RSS,
which counts the checkpoint's memory-mapped pages that were read, or psutil polling where there is
no /usr/bin/time), the size of the largest component (the appearance UNet at full size, 3.4 GB in
float32), and their ratio; a Python process that only imports the converter is the floor.

`python benchmarks/bench_convert_memory.py --build-only DIR` writes the checkpoint and stops
(benchmarks/full_size_smoke.py measures that stage this way).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))  # tests/meta_checkpoint.py

from tests.meta_checkpoint import meta_state_dict  # noqa: E402

from magicpose.models.official_checkpoint import (  # noqa: E402
    CLIP_PREFIX,
    convert_component,
    load_ldm_config,
    plan_conversion,
)

REFERENCE = REPO.parent / "shared" / "reference" / "magicdance"
FULL_KEYS = REFERENCE / "full_keys.json"
TINY = REFERENCE / "tiny"
# A CLIP text encoder small enough for the tiny model (its context width is 32); the vocabulary stays
# CLIP's so that the empty prompt's token ids (49406, 49407) exist.
SMALL_CLIP = dict(
    vocab_size=49408,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    projection_dim=32,
)
SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.int64: "I64",
    torch.float32: "F32",
    torch.int32: "I32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
}


@dataclass
class Layout:
    """Keys and shapes (meta tensors) of a checkpoint in the official layout, and its model YAML (None: SD-1.5)."""

    tensors: dict[str, torch.Tensor]
    config: Path | None

    def component_bytes(self) -> dict[str, int]:
        """Bytes of every converted component at the checkpoint's dtypes."""
        ldm_config = load_ldm_config(self.config)
        plan = plan_conversion(self.tensors, ldm_config)
        return {
            name: sum(t.numel() * t.element_size() for t in convert_component(self.tensors, name, plan).values())
            for name in plan.components
        }

    @property
    def total_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def layout(size: str, workdir: Path) -> Layout:
    """`full`: the official full-size layout; `small`: the tiny reference model plus a small CLIP
    (its YAML, with the CLIP's config added, is written into `workdir`)."""
    if size == "full":
        return Layout(meta_state_dict(FULL_KEYS), None)
    if size != "small":
        raise ValueError(f"unknown size {size!r}")
    from safetensors import safe_open
    from transformers import CLIPTextConfig, CLIPTextModel

    tensors = {}
    with safe_open(TINY / "official_state_dict.safetensors", framework="pt") as handle:
        for key in handle.keys():
            part = handle.get_slice(key)
            dtype = {value: key for key, value in SAFETENSORS_DTYPES.items()}[part.get_dtype()]
            tensors[key] = torch.empty(part.get_shape(), dtype=dtype, device="meta")
    with torch.device("meta"):
        clip = CLIPTextModel(CLIPTextConfig(**SMALL_CLIP))
    for key, value in clip.state_dict().items():
        tensors[CLIP_PREFIX + "text_model." + key] = torch.empty_like(value, device="meta")
    tensors[CLIP_PREFIX + "text_model.embeddings.position_ids"] = torch.empty(1, 77, dtype=torch.int64, device="meta")
    config = yaml.safe_load((TINY / "config.yaml").read_text())
    config["model"]["params"]["cond_stage_config"] = {"params": dict(SMALL_CLIP)}
    path = workdir / "small_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return Layout(tensors, path)


def ddpm_buffers(timesteps: int = 1000) -> dict[str, torch.Tensor]:
    """The official model's noise-schedule buffers (SD-1.5's linear betas 0.00085..0.012), float32."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, timesteps, dtype=torch.float64) ** 2
    alphas = 1.0 - betas
    cumprod = torch.cumprod(alphas, 0)
    previous = torch.cat([torch.ones(1, dtype=torch.float64), cumprod[:-1]])
    variance = betas * (1.0 - previous) / (1.0 - cumprod)
    buffers = {
        "betas": betas,
        "alphas_cumprod": cumprod,
        "alphas_cumprod_prev": previous,
        "sqrt_alphas_cumprod": cumprod.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - cumprod).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / cumprod).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / cumprod - 1).sqrt(),
        "posterior_variance": variance,
        "posterior_log_variance_clipped": variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * previous.sqrt() / (1.0 - cumprod),
        "posterior_mean_coef2": (1.0 - previous) * alphas.sqrt() / (1.0 - cumprod),
        "logvar": torch.zeros(timesteps, dtype=torch.float64),
    }
    return {key: value.float() for key, value in buffers.items()}


def random_tensor(key: str, like: torch.Tensor, generator: torch.Generator, buffers: dict) -> torch.Tensor:
    """A plausible random value: fan-in-scaled normal weights, norm scales near 1, small biases."""
    name = key.rsplit(".", 1)[-1]
    if key in buffers:
        return buffers[key].to(like.dtype).reshape(like.shape)
    if not like.dtype.is_floating_point:  # position ids
        return torch.arange(like.shape[-1], dtype=like.dtype).expand(like.shape).contiguous()
    if like.ndim >= 2:
        fan_in = math.prod(like.shape[1:])
        return (torch.randn(like.shape, generator=generator) * fan_in**-0.5).to(like.dtype)
    noise = torch.randn(like.shape, generator=generator) * 0.02
    return (noise + 1.0 if name == "weight" else noise).to(like.dtype)


def write_random_safetensors(tensors: dict[str, torch.Tensor], path: Path, seed: int = 0) -> None:
    """Write random values for every key as a .safetensors file, one tensor in memory at a time."""
    buffers = ddpm_buffers()
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))  # keeps every tensor aligned
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for key in order:
        size = tensors[key].numel() * tensors[key].element_size()
        header[key] = {
            "dtype": SAFETENSORS_DTYPES[tensors[key].dtype],
            "shape": list(tensors[key].shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    generator = torch.Generator().manual_seed(seed)
    temporary = path.with_name(path.name + ".part")
    with open(temporary, "wb") as file:
        file.write(struct.pack("<Q", len(encoded)) + encoded)
        for key in order:
            value = random_tensor(key, tensors[key], generator, buffers).contiguous()
            raw = value.view(torch.int16) if value.dtype == torch.bfloat16 else value
            file.write(memoryview(raw.numpy()).cast("B"))
    temporary.replace(path)


def write_torch_from_safetensors(source: Path, path: Path) -> None:
    """The same tensors as a torch .th (the official format); read memory-mapped from `source`."""
    from safetensors import safe_open

    with safe_open(source, framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    temporary = path.with_name(path.name + ".part")
    torch.save(state, temporary)
    del state
    temporary.replace(path)


def build_checkpoints(size: str, folder: Path, formats: list[str], seed: int = 0) -> tuple[dict[str, Path], Layout]:
    """Random checkpoints in `folder` (`model_state-random.<format>` per format) and their layout."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = layout(size, folder)
    safetensors = folder / "model_state-random.safetensors"
    write_random_safetensors(spec.tensors, safetensors, seed)
    paths = {}
    if "th" in formats:
        paths["th"] = folder / "model_state-random.th"
        write_torch_from_safetensors(safetensors, paths["th"])
    if "safetensors" in formats:
        paths["safetensors"] = safetensors
    else:
        safetensors.unlink()
    return paths, spec


def magicpose_command() -> list[str]:
    script = Path(sys.executable).with_name("magicpose")
    return [str(script)] if script.exists() else [sys.executable, "-m", "magicpose.interfaces.cli"]


def measure(command: list[str], log: Path | None = None) -> dict:
    """Run `command`; its exit status, peak RSS (bytes) and wall time. Output goes to `log` (or is kept)."""
    time_tool = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as report:
        report_path = Path(report.name)
    output = open(log, "w") if log is not None else subprocess.PIPE
    start = time.perf_counter()
    try:
        if time_tool:
            process = subprocess.Popen(
                [time_tool, "-o", str(report_path), "-f", "%M", *command],
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
            text, _ = process.communicate()
            peak = int(report_path.read_text().split()[-1]) * 1024
        else:
            process, peak, text = _poll_peak(command, output)
    finally:
        report_path.unlink(missing_ok=True)
        if log is not None:
            output.close()
    wall = time.perf_counter() - start
    if log is not None:
        text = log.read_text()
    return {"rc": process.returncode, "peak_rss": peak, "wall_s": wall, "output": text or ""}


def _poll_peak(command, output):
    import psutil

    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    text = process.stdout.read() if process.stdout else ""
    return process, peak, text


def gb(count: int) -> str:
    return f"{count / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["full", "small"], default="full")
    parser.add_argument("--formats", nargs="+", choices=["th", "safetensors"], default=["th", "safetensors"])
    parser.add_argument("--dtype", default="float32", help="--dtype passed to magicpose convert")
    parser.add_argument("--workdir", help="folder for the checkpoints and outputs (default: a temporary one in /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints and converted folders")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-only", metavar="DIR", help="only write the checkpoint(s) into DIR")
    args = parser.parse_args()

    if args.build_only:
        paths, _ = build_checkpoints(args.size, Path(args.build_only), args.formats, args.seed)
        print(json.dumps({name: str(path) for name, path in paths.items()}))
        return
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_convert_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        spec = layout(args.size, workdir)
        components = spec.component_bytes()
        largest = max(components, key=components.get)
        print(
            f"layout {args.size}: {len(spec.tensors)} keys, {gb(spec.total_bytes)}; components: "
            + ", ".join(f"{name} {gb(size)}" for name, size in components.items())
        )
        floor = measure(
            [
                sys.executable,
                "-c",
                "import magicpose.models.official_checkpoint, magicpose.pipelines.pipeline_magicpose",
            ]
        )
        rows.append(("import floor", floor["peak_rss"], floor["wall_s"]))
        for fmt in args.formats:
            start = time.perf_counter()
            paths, _ = build_checkpoints(args.size, workdir, [fmt], args.seed)
            print(f"built {paths[fmt].name} in {time.perf_counter() - start:.0f} s")
            out = workdir / f"converted-{fmt}"
            command = [
                *magicpose_command(),
                "convert",
                str(paths[fmt]),
                str(out),
                "--dtype",
                args.dtype,
                "--overwrite",
            ]
            if spec.config is not None:
                command += ["--config", str(spec.config)]
            result = measure(command)
            if result["rc"] != 0:
                raise SystemExit(f"convert failed ({result['rc']}):\n{result['output'][-3000:]}")
            missing = [
                name
                for name in (
                    "model_index.json",
                    "unet",
                    "appearance_control",
                    "pose_control",
                    "vae",
                    "text_context",
                    "scheduler",
                    "text_encoder",
                )
                if not (out / name).exists()
            ]
            if missing:
                raise SystemExit(f"converted folder lacks {missing}")
            rows.append((f"convert .{fmt} -> {args.dtype}", result["peak_rss"], result["wall_s"]))
            if not args.keep:
                shutil.rmtree(out)
                paths[fmt].unlink()
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nlargest component: {largest}, {gb(components[largest])}")
    print(f"{'stage':<32} {'peak RSS':>10} {'x largest':>10} {'wall':>8}")
    for label, peak, wall in rows:
        print(f"{label:<32} {gb(peak):>10} {peak / components[largest]:>10.2f} {wall:>7.1f}s")


if __name__ == "__main__":
    main()
