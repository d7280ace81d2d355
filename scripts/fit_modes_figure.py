"""docs/fit_modes.png: `--fit crop`, `pad` and `person` on real photos whose shape is not the output's.

    .venv/bin/python scripts/fit_modes_figure.py [--out docs/fit_modes.png]

Two cases a creator meets: a landscape photo with the person off to one side, animated in portrait;
a portrait photo animated in landscape. Each panel shows the photo as the model would see it, with
the detected skeleton mapped through the same fit. The script prints, per case and mode, the share of
the person's keypoints inside the frame, the person's height in output pixels and the padded share
of the frame (the table in docs/poses.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from magicpose.media import read_image, write_image
from magicpose.poses.detect import PoseDetector
from magicpose.poses.framing import FIT_MODES, fit, person_box
from magicpose.poses.render import draw_openpose

REAL_MEDIA = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "real_media"
PANEL_HEIGHT = 300


def off_centre(photo: np.ndarray, width: int, left: int) -> np.ndarray:
    """The photo at `left` in a wider frame of its own border colour: a person off to one side."""
    canvas = np.empty((photo.shape[0], width, 3), dtype=np.uint8)
    canvas[:] = np.concatenate([photo[:, :4], photo[:, -4:]], axis=1).reshape(-1, 3).mean(axis=0)
    canvas[:, left : left + photo.shape[1]] = photo
    return canvas


def overlay(image: np.ndarray, pose) -> np.ndarray:
    drawn = draw_openpose(pose, image.shape[1], image.shape[0])
    return np.where(drawn.max(axis=2, keepdims=True) > 0, drawn, image)


def panel(image: np.ndarray, title: str, lines: list[str]) -> Image.Image:
    scale = PANEL_HEIGHT / image.shape[0]
    picture = Image.fromarray(image).resize((round(image.shape[1] * scale), PANEL_HEIGHT), Image.LANCZOS)
    out = Image.new("RGB", (max(picture.width, 330) + 16, PANEL_HEIGHT + 80), "white")
    out.paste(picture, (8, 8))
    draw = ImageDraw.Draw(out)
    draw.text((8, PANEL_HEIGHT + 14), title, fill="black", font=ImageFont.load_default(size=17))
    for index, line in enumerate(lines):
        draw.text((8, PANEL_HEIGHT + 36 + 17 * index), line, fill=(70, 70, 70), font=ImageFont.load_default(size=14))
    return out


def measure(framing, pose) -> dict:
    """Share of keypoints inside the frame, person height (output px), padded share of the frame."""
    width, height = framing.size
    points = framing.pose(pose).present_points()
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    left, top, right, bottom = framing.output_box(person_box([pose], framing.source_size))
    visible = np.clip(framing.output_box((0, 0, *framing.source_size)), 0, [width, height] * 2)
    photo_area = (visible[2] - visible[0]) * (visible[3] - visible[1])
    return {
        "kept": float(inside.mean()),
        "height": float(min(bottom, height) - max(top, 0)),
        "padded": 1 - photo_area / (width * height),
        "cut": framing.cuts(pose),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/fit_modes.png"))
    args = parser.parse_args()
    cases = [
        ("astronaut.png, landscape, person at the left -> 384x512", "astronaut.png", (384, 512), True),
        ("grace_hopper.jpg, portrait -> 512x288 (16:9)", "grace_hopper.jpg", (512, 288), False),
    ]
    rows = []
    with PoseDetector() as detector:
        for title, name, size, shift in cases:
            photo = read_image(REAL_MEDIA / name)
            if shift:
                photo = off_centre(photo, 1100, 40)
            pose = detector.detect_image(photo)
            source = photo.copy()
            left, top, right, bottom = (int(v) for v in person_box([pose], (photo.shape[1], photo.shape[0])))
            source[max(top, 0) : max(top, 0) + 3, left:right] = (255, 0, 0)
            source[min(bottom, photo.shape[0]) - 3 : min(bottom, photo.shape[0]), left:right] = (255, 0, 0)
            panels = [panel(overlay(source, pose), f"photo {photo.shape[1]}x{photo.shape[0]}", [title])]
            print(f"\n{title}")
            print("| fit | keypoints in frame | person height (px) | padded | says |")
            for mode in FIT_MODES:
                framing = fit(mode, (photo.shape[1], photo.shape[0]), size, [pose])
                figures = measure(framing, pose)
                says = "aligned (person partly cropped ...)" if figures["cut"] else "aligned"
                print(
                    f"| {mode} | {figures['kept']:.0%} | {figures['height']:.0f} of {size[1]} | "
                    f"{figures['padded']:.0%} | {says} |"
                )
                lines = [
                    f"keypoints in frame {figures['kept']:.0%}, person {figures['height']:.0f}/{size[1]} px",
                    f"padded {figures['padded']:.0%}" + (", PERSON CUT" if figures["cut"] else ""),
                ]
                panels.append(panel(overlay(framing.image(photo), framing.pose(pose)), f"--fit {mode}", lines))
            row = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), "white")
            x = 0
            for item in panels:
                row.paste(item, (x, 0))
                x += item.width
            rows.append(row)
    figure = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        figure.paste(row, (0, y))
        y += row.height
    write_image(args.out, np.asarray(figure))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
