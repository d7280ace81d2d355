#!/usr/bin/env bash
# Table 3 of the paper on the puppet world (docs/default_model.md): every row is one
# `magicpose evaluate --puppet` of an export of scripts/train_default_model.sh, on the test split.
#
#   scripts/ablation_table.sh [GUIDANCE [OPTIONS...]]   # GUIDANCE: the image guidance scale of the rows that
#                                                       # use it (default 4, the docs' table); OPTIONS go to
#                                                       # every evaluate (--videos 4 ...)
# Every row samples as the default model does (DPM-Solver++ from the noised reference, evaluate's default
# steps), whatever its export folder says: exports of older versions sampled with DDIM from pure noise.
#   STAGE2=runs/puppet/stage2_pose_step1659/export scripts/ablation_table.sh ...
#                                                       # the full model's export, to compare the rows at
#                                                       # equal training (the w/o augmentation run's steps)
set -euo pipefail
cd "$(dirname "$0")/.."
MAGICPOSE=${MAGICPOSE:-magicpose}
guidance=${1:-4}
shift || true
options=(--scheduler dpm++ --start-from-reference "$@")
out=runs/puppet/ablation && mkdir -p $out
stage1=runs/puppet/stage1_appearance/export stage2=${STAGE2:-runs/puppet/stage2_pose/export}
no_augmentation=runs/puppet/stage2_pose_no_augmentation/export

row() {  # row NAME ARGS...: one evaluation, its JSON in runs/puppet/ablation/NAME.json
    local name=$1 && shift
    echo "$(date +%T) $name: $MAGICPOSE evaluate --puppet --no-baseline --no-vae-ceiling $* ${options[*]}"
    # progress bars go to NAME.log; on failure it is shown, so the error is not lost with them
    $MAGICPOSE evaluate --puppet --no-baseline --no-vae-ceiling "$@" "${options[@]}" --json "$out/$name.json" \
        2> "$out/$name.log" | tail -n +2 || { tail -n 5 "$out/$name.log" >&2; exit 1; }
}

row controlnet_only --model $stage1 --no-reference --guidance "$guidance"
row app_pretrain_only --model $stage1 --guidance "$guidance"
row no_image_guidance --model $stage2 --guidance 1
row no_augmentation --model $no_augmentation --guidance "$guidance"
row full --model $stage2 --guidance "$guidance"
row no_augmentation_missing_hands_face --model $no_augmentation --guidance "$guidance" --no-hands --no-face
row full_missing_hands_face --model $stage2 --guidance "$guidance" --no-hands --no-face
python3 scripts/ablation_markdown.py $out
