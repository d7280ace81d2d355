"""AnimateDiff's own motion-module files (`mm_sd_v15.ckpt`, `mm_sd_v15_v2.ckpt`, `v3_sd15_mm.ckpt`), read
into diffusers' `MotionAdapter` names, with every way a file can fail to fit named in one line.

The files are plain dicts of the motion modules' tensors under AnimateDiff's names
(`down_blocks.N.motion_modules.M.temporal_transformer...attention_blocks.0.to_q.weight`), position
tables (`pos_encoder.pe`, one per attention block) included. v1 has no middle block and 24 positions,
v2 a middle block and 32, v3 v2's names without the middle block. A `.safetensors` of the same names,
or of diffusers' names, reads the same way.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from magicpose.errors import InputError

# AnimateDiff's names -> diffusers' (`convert_animatediff_checkpoint_to_diffusers`, which drops the position
# tables; they are kept here: AnimateDiff computes with the file's tables, not rebuilt ones).
_RENAMES = (
    (".norms.0", ".norm1"),
    (".norms.1", ".norm2"),
    (".ff_norm", ".norm3"),
    (".temporal_transformer", ""),
)
_POSITION_TABLE = "pos_embed.pe"


def read_motion_file(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """The file's tensors under diffusers' names, and whether the file uses AnimateDiff's own names."""
    original = _read_state_dict(path)
    if not any(".temporal_transformer." in name for name in original):
        return original, False
    return _convert(original, path), True


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            state_dict = load_file(path)
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path} is not a readable motion-module file ({reason}); download it again") from error
    if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not any(isinstance(value, torch.Tensor) for value in state_dict.values()):
        raise InputError(f"{path} does not hold a dict of tensors; expected an AnimateDiff motion-module file")
    # Metadata beside the tensors (AnimateDiff's training saves `global_step`) is not weights.
    return {name: value for name, value in state_dict.items() if isinstance(value, torch.Tensor)}


def _convert(original: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Rename to diffusers' layout. Each AnimateDiff attention block has its own position table, diffusers'
    transformer block one for both: the first is kept, and the second must equal it."""
    converted = {}
    for name, value in original.items():
        for old, new in _RENAMES:
            name = name.replace(old, new)
        if name.endswith(".pos_encoder.pe"):
            block, _, attention = name.removesuffix(".pos_encoder.pe").rpartition(".attention_blocks.")
            key = f"{block}.{_POSITION_TABLE}"
            if key in converted and (converted[key].shape != value.shape or not torch.equal(converted[key], value)):
                raise InputError(f"{path}: the position tables of {block} differ; the file is damaged")
            converted[key] = value
            continue
        converted[name.replace(".attention_blocks.0", ".attn1").replace(".attention_blocks.1", ".attn2")] = value
    return converted


def animatediff_name(name: str) -> str:
    """A diffusers motion-module name as AnimateDiff's files spell it (for messages about a file)."""
    head, found, rest = name.partition(".motion_modules.")
    if not found:
        return name
    index, _, rest = rest.partition(".")
    rest = rest.replace("pos_embed.pe", "attention_blocks.0.pos_encoder.pe")
    rest = rest.replace(".attn1", ".attention_blocks.0").replace(".attn2", ".attention_blocks.1")
    for old, new in _RENAMES[:3]:
        rest = rest.replace(new, old)
    return f"{head}.motion_modules.{index}.temporal_transformer.{rest}"


def position_table_length(state_dict: dict[str, torch.Tensor]) -> int | None:
    """Frames the temporal position tables cover (AnimateDiff v1: 24, v2: 32), if the file holds them."""
    for name, value in state_dict.items():
        if name.endswith(_POSITION_TABLE) and value.ndim == 3:
            return value.shape[1]
    return None


def motion_adapter_config_from_state_dict(
    state_dict: dict[str, torch.Tensor],
    num_attention_heads: int = 8,
    norm_num_groups: int = 32,
    max_seq_length: int | None = None,
) -> dict:
    """`MotionAdapter` config of diffusers-named motion weights, read from the names and shapes
    (`max_seq_length` from the position tables when not given, else AnimateDiff v2's 32). The head count
    and the norm groups are not recorded by the weights (AnimateDiff v1-v3: 8 and 32)."""
    if not any("motion_modules" in name for name in state_dict):
        raise InputError("no motion-module weights found (no key contains 'motion_modules')")

    def count(prefix: str) -> int:
        indices = {name[len(prefix) :].split(".")[0] for name in state_dict if name.startswith(prefix)}
        return len(indices)

    blocks = count("down_blocks.")
    channels = []
    for i in range(blocks):
        weight = state_dict.get(f"down_blocks.{i}.motion_modules.0.proj_in.weight")
        if weight is None or weight.ndim != 2:
            what = "missing" if weight is None else f"misshaped ({tuple(weight.shape)})"
            raise InputError(
                f"down_blocks.{i}.motion_modules.0 proj_in.weight is {what}: not an AnimateDiff motion module"
            )
        channels.append(weight.shape[1])
    layers = {count(f"down_blocks.{i}.motion_modules.") for i in range(blocks)}
    if len(layers) != 1:
        raise InputError(f"motion modules with different layer counts per block ({sorted(layers)}) are not supported")
    return dict(
        block_out_channels=tuple(channels),
        motion_layers_per_block=layers.pop(),
        motion_transformer_layers_per_block=count("down_blocks.0.motion_modules.0.transformer_blocks."),
        motion_num_attention_heads=num_attention_heads,
        motion_norm_num_groups=norm_num_groups,
        motion_max_seq_length=max_seq_length or position_table_length(state_dict) or 32,
        use_motion_mid_block=any(name.startswith("mid_block.motion_modules.") for name in state_dict),
    )


def check_fits(
    expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], path: Path, animatediff_names: bool
) -> None:
    """Every tensor of `expected` in `given` with its shape, and nothing more (position tables may be absent:
    they are fixed sinusoids), else one line naming what does not fit, by the file's own names."""
    spelled = animatediff_name if animatediff_names else str
    missing = [spelled(name) for name in expected if name not in given and not name.endswith(_POSITION_TABLE)]
    unexpected = [spelled(name) for name in given if name not in expected]
    misshaped = [
        f"{spelled(name)} {tuple(given[name].shape)} instead of {tuple(value.shape)}"
        for name, value in expected.items()
        if name in given and given[name].shape != value.shape
    ]
    if missing or unexpected or misshaped:
        problems = [
            f"{len(found)} {what} (e.g. {found[0]})"
            for what, found in (("missing keys", missing), ("unexpected keys", unexpected), ("misshaped", misshaped))
            if found
        ]
        raise InputError(
            f"{path} does not match an AnimateDiff motion module: {'; '.join(problems)}; the file is damaged "
            "or of another model"
        )
