#!/usr/bin/env bash
# The recipe of the embedded default model (docs/default_model.md): every stage on the puppet world at
# 128x128 through `magicpose train`, each stage reading the exports of the ones before it.
#
#   scripts/train_default_model.sh            # all stages, then copies the stage-2 export into the package
#   (a stage whose export exists is skipped; one with checkpoints but no export is resumed)
#   MINUTES="base_unet=20 stage2_pose=28" scripts/train_default_model.sh   # optional wall-clock budget per stage
#
# The configs' max_steps are the steps the shipped model's runs reached (they ran under the budgets in
# docs/default_model.md), so without MINUTES the script repeats those runs.
#
# Stage 2 and its "w/o augmentation" ablation run side by side, one CPU thread each, on 2-core machines.
set -euo pipefail
cd "$(dirname "$0")/.."
MAGICPOSE=${MAGICPOSE:-magicpose}
declare -A minutes=()
for pair in ${MINUTES:-}; do minutes[${pair%%=*}]=${pair#*=}; done
mkdir -p runs/puppet

train() {  # train NAME: configs/puppet/NAME.yaml within its time budget, log in runs/puppet/NAME.log
    local out
    out=$(grep -o 'dir: [^,}]*' "configs/puppet/$1.yaml" | cut -d' ' -f2)
    if [ -d "$out/export" ]; then echo "$1: $out/export exists, skipped"; return; fi
    local resume=()  # a run cut short (say, by the end of a working session) continues where it stopped
    if [ -d "$out/checkpoints" ]; then resume=(--resume); fi
    local budget=()
    if [ -n "${minutes[$1]:-}" ]; then budget=("train.max_minutes=${minutes[$1]}"); fi
    echo "$(date +%T) $1 ${resume[*]} ${budget[*]}"
    $MAGICPOSE train "${resume[@]}" "configs/puppet/$1.yaml" "${budget[@]}" >> "runs/puppet/$1.log" 2>&1
    grep -a -o 'stopping at step [0-9]*\|exported .*' "runs/puppet/$1.log" | tail -2
}

train vae
train base_unet
train controlnet
train stage1_appearance
OMP_NUM_THREADS=1 train stage2_pose & full=$!
OMP_NUM_THREADS=1 train ablation_no_augmentation & ablation=$!
wait $full $ablation

# The package's default model: the stage-2 pipeline, plus the pretrained ControlNet (before stage 2) that
# `magicpose evaluate --puppet` uses for its pose-ControlNet-only baseline.
partial=src/magicpose/default_model.partial
rm -rf $partial && cp -r runs/puppet/stage2_pose/export $partial
cp -r runs/puppet/controlnet/export/pose_control $partial/pretrained_pose_control
rm -rf src/magicpose/default_model && mv $partial src/magicpose/default_model
echo "$(date +%T) default model: src/magicpose/default_model ($(du -sh src/magicpose/default_model | cut -f1))"
