"""The configs in configs/ and the default model's recipe (scripts/train_default_model.sh) hold together:
every config validates, and every stage of the recipe reads only exports that an earlier stage writes."""

import re

import pytest

from magicpose.training.config import TrainingConfig, load_config
from tests.training.helpers import ROOT, training_configs

CONFIGS = training_configs()
RECIPE = ROOT / "scripts" / "train_default_model.sh"
# Each config writes to runs/FOLDER/NAME (configs/FOLDER/NAME.yaml), but for these.
OUTPUT_DIRS = {"puppet/ablation_no_augmentation": "runs/puppet/stage2_pose_no_augmentation"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: str(path.relative_to(ROOT / "configs")))
def test_every_shipped_config_validates_and_writes_to_its_own_folder(path):
    config = load_config(path)
    name = str(path.relative_to(ROOT / "configs").with_suffix(""))
    assert config.output.dir == OUTPUT_DIRS.get(name, f"runs/{name}")


def test_no_two_configs_share_an_output_folder():
    folders = [load_config(path).output.dir for path in CONFIGS]
    assert len(CONFIGS) >= 13 and len(set(folders)) == len(folders)


def recipe_configs() -> list[tuple[str, TrainingConfig]]:
    """(config name, config with its overrides) of each `train NAME ...` line of the recipe, in order."""
    variables, calls = {}, []
    for line in RECIPE.read_text().splitlines():
        line = line.split("#")[0].strip()
        if assignment := re.fullmatch(r"(\w+)=(\S+)", line):
            variables[assignment[1]] = assignment[2]
        elif call := re.match(r"(?:OMP_NUM_THREADS=\d+ )?train (\w+)(.*?)(?:&.*)?$", line):
            overrides = re.sub(r"\$(\w+)", lambda match: variables[match[1]], call[2]).split()
            calls.append((call[1], load_config(ROOT / "configs" / "puppet" / f"{call[1]}.yaml", overrides)))
    return calls


def test_each_recipe_stage_reads_only_exports_of_earlier_stages():
    calls = recipe_configs()
    assert len(calls) >= 6, "the recipe's train lines were not found"
    written: set[str] = set()
    for name, config in calls:
        for field, value in vars(config.model).items():
            if isinstance(value, str) and value.startswith("runs/"):
                run = value.split("/export/")[0]
                assert run in written, (
                    f"{name}: model.{field} reads {value}, which no earlier stage of the recipe writes"
                )
        written.add(config.output.dir)


def test_the_recipe_ships_the_exports_of_stages_it_trains():
    written = {config.output.dir for _, config in recipe_configs()}
    shipped = re.findall(r"cp -r (runs/\S+?)/export", RECIPE.read_text())
    assert len(shipped) == 3 and set(shipped) <= written  # the model, its motion module, the pretrained ControlNet
