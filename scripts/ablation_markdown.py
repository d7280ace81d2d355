"""The ablation table in Markdown from the JSON files of scripts/ablation_table.sh."""

import json
import sys
from pathlib import Path

ROWS = [  # (file, App-Pretrain, Disentangle, Image CFG, Data Aug, driving skeletons)
    ("controlnet_only", "-", "-", "yes", "yes", "full"),
    ("app_pretrain_only", "yes", "-", "yes", "yes", "full"),
    ("no_image_guidance", "yes", "yes", "-", "yes", "full"),
    ("no_augmentation", "yes", "yes", "yes", "-", "full"),
    ("full", "yes", "yes", "yes", "yes", "full"),
    ("no_augmentation_missing_hands_face", "yes", "yes", "yes", "-", "no hands, no face"),
    ("full_missing_hands_face", "yes", "yes", "yes", "yes", "no hands, no face"),
]
COLUMNS = [
    ("masked_psnr", "masked PSNR ↑", "{:.2f}"),
    ("masked_ssim", "masked SSIM ↑", "{:.3f}"),
    ("mask_iou", "mask IoU ↑", "{:.3f}"),
    ("identity_colour_error", "colour ΔE ↓", "{:.1f}"),
    ("ssim", "SSIM ↑", "{:.3f}"),
    ("psnr", "PSNR ↑", "{:.2f}"),
    ("l1", "L1 ↓", "{:.2e}"),
]


def main(folder: Path) -> None:
    print(
        "| App-Pretrain | Disentangle | Image CFG | Data Aug | driving | " + " | ".join(c[1] for c in COLUMNS) + " |"
    )
    print("|---" * (5 + len(COLUMNS)) + "|")
    for name, *flags in ROWS:
        path = folder / f"{name}.json"
        if not path.is_file():
            continue
        row = next(iter(json.loads(path.read_text())["rows"].values()))
        print("| " + " | ".join(flags) + " | " + " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/puppet/ablation"))
