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
# Table 3 compares stage 2 with and without augmentation at equal training: the "w/o augmentation" run
# and a copy of stage 2 stopped at the same step (runs/puppet/stage2_pose_step1659) train side by side,
# one CPU thread each, after the model's own longer stage-2 run.
set -euo pipefail
cd "$(dirname "$0")/.."
MAGICPOSE=${MAGICPOSE:-magicpose}
declare -A minutes=()
for pair in ${MINUTES:-}; do minutes[${pair%%=*}]=${pair#*=}; done
mkdir -p runs/puppet

train() {  # train NAME [KEY=VALUE...]: configs/puppet/NAME.yaml within its budget; log beside its output.dir
    local name=$1 out && shift
    out=$(grep -o 'dir: [^,}]*' "configs/puppet/$name.yaml" | cut -d' ' -f2)
    for override in "$@"; do [[ $override == output.dir=* ]] && out=${override#output.dir=}; done
    if [ -d "$out/export" ]; then echo "$name: $out/export exists, skipped"; return; fi
    local resume=()  # a run cut short (say, by the end of a working session) continues where it stopped
    if [ -d "$out/checkpoints" ]; then resume=(--resume); fi
    local budget=()
    if [ -n "${minutes[$name]:-}" ]; then budget=("train.max_minutes=${minutes[$name]}"); fi
    local log=runs/puppet/$(basename "$out").log
    echo "$(date +%T) $name $* ${resume[*]} ${budget[*]}"
    $MAGICPOSE train "${resume[@]}" "configs/puppet/$name.yaml" "$@" "${budget[@]}" >> "$log" 2>&1
    grep -a -o 'stopping at step [0-9]*\|exported .*' "$log" | tail -2
}

train vae
train base_unet
train controlnet
train stage1_appearance
train stage2_pose
# 1,659: where the first stage-2 run stopped beside the ablation's 1,656 (both had 28 minutes; docs)
OMP_NUM_THREADS=1 train stage2_pose train.max_steps=1659 output.dir=runs/puppet/stage2_pose_step1659 & full=$!
OMP_NUM_THREADS=1 train ablation_no_augmentation & ablation=$!
wait $full $ablation

# The base UNet was the bottleneck (docs): its own run continues from its last checkpoint (same optimizer
# state and data order) in a folder of its own, since the stages above read its first export; stage 2 and
# the OpenPose ControlNet then continue on it.
continued=runs/puppet/base_unet_continued
if [ ! -d $continued ]; then
    mkdir -p $continued/checkpoints && cp -r "$(ls -d runs/puppet/base_unet/checkpoints/step-* | tail -1)" $continued/checkpoints/
fi
train base_unet output.dir=$continued train.max_steps=10437
train stage2_pose_rebased
train controlnet_rebased
# Those runs kept a constant learning rate; each of the three then trains on with it annealed to zero (docs).
train base_unet_annealed
train stage2_pose_annealed
train controlnet_annealed

# Stage 3: a motion module on that model, first on AnimateDiff's independent noise, then on noise a
# clip's frames mostly share, as the model samples (docs: "Stage 3"); the second is shipped.
train stage3_motion
train stage3_motion_shared_noise

# The package's default model: the stage-2 pipeline on the annealed base, its motion module, and the
# pretrained ControlNet (before stage 2, on the same base) that `magicpose evaluate --puppet` uses for
# its ControlNet-only baseline.
partial=src/magicpose/default_model.partial
rm -rf $partial && cp -r runs/puppet/stage2_pose_annealed/export $partial
cp -r runs/puppet/stage3_motion_shared_noise/export/motion_adapter $partial/motion_adapter
cp -r runs/puppet/controlnet_annealed/export/pose_control $partial/pretrained_pose_control
# List the motion module as the pipeline's optional component, so every loader (diffusers' too) includes it.
python -c "import json, sys; p = sys.argv[1]; i = json.load(open(p)); i['motion_adapter'] = ['diffusers', 'MotionAdapter']; \
open(p, 'w').write(json.dumps(i, indent=2, sort_keys=True) + '\n')" $partial/model_index.json
rm -rf src/magicpose/default_model && mv $partial src/magicpose/default_model
echo "$(date +%T) default model: src/magicpose/default_model ($(du -sh src/magicpose/default_model | cut -f1))"
