"""Backgrounds: a vertical gradient wall with a texture, a floor below a floor line, and a few objects.

Backgrounds are static within a video (a fixed camera, as in TikTok clips), so the world renders
each one once; it is also the "known background" against which a generated person is segmented.
"""

from __future__ import annotations

import cv2
import numpy as np


def _mix(a, b, t):
    return np.asarray(a, dtype=np.float32) * (1 - t) + np.asarray(b, dtype=np.float32) * t


def render_background(seed: int, width: int, height: int, floor_y: float | None) -> np.ndarray:
    """(height, width, 3) uint8 RGB background for `seed`; `floor_y` (pixels) is the floor line, None hides it."""
    rng = np.random.default_rng([0xB6, int(seed)])
    top, bottom = rng.uniform(40, 235, 3), rng.uniform(40, 235, 3)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(_mix(top, bottom, rows), (height, width, 3)).copy()
    texture = rng.choice(["noise", "stripes", "tiles", "plain"])
    if texture == "noise":  # blotchy plaster: coarse noise upsampled smoothly
        coarse = rng.normal(0, 1, (int(rng.integers(4, 12)),) * 2).astype(np.float32)
        image += rng.uniform(6, 16) * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)[..., None]
    elif texture == "stripes":  # wallpaper
        period = rng.uniform(0.04, 0.12) * width
        columns = np.arange(width, dtype=np.float32)
        image += (rng.uniform(6, 18) * (np.sin(2 * np.pi * columns / period) > 0))[None, :, None]
    elif texture == "tiles":
        size = rng.uniform(0.06, 0.15) * width
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        image += (rng.uniform(5, 14) * (((xs // size) + (ys // size)) % 2))[..., None]
    scale = width / 128.0
    for _ in range(int(rng.integers(1, 4))):
        _draw_object(image, rng, width, height, floor_y, scale)
    if floor_y is not None:
        floor = int(round(floor_y))
        floor_colour = rng.uniform(30, 200, 3)
        depth = np.linspace(0, 1, max(height - floor, 1), dtype=np.float32)[:, None, None]
        image[floor:] = _mix(floor_colour, floor_colour * 0.75, depth)
        cv2.line(
            image, (0, floor), (width - 1, floor), (floor_colour * 0.55).tolist(), max(1, int(scale)), cv2.LINE_AA
        )
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_object(image, rng, width, height, floor_y, scale) -> None:
    """One of: a picture frame, a window, a round clock or lamp, a potted plant, a shelf."""
    colour = rng.uniform(20, 235, 3).tolist()
    dark = (np.array(colour) * 0.5).tolist()
    kind = rng.choice(["frame", "window", "round", "plant", "shelf"])
    x, y = rng.uniform(0.05, 0.95) * width, rng.uniform(0.08, 0.55) * height
    size = rng.uniform(0.08, 0.22) * width
    line = max(1, int(round(2 * scale)))
    if kind in ("frame", "window"):
        w, h = size * rng.uniform(0.7, 1.4), size * rng.uniform(0.7, 1.4)
        p0, p1 = (int(x - w / 2), int(y - h / 2)), (int(x + w / 2), int(y + h / 2))
        cv2.rectangle(image, p0, p1, colour, -1)
        cv2.rectangle(image, p0, p1, dark, line)
        if kind == "window":
            cv2.line(image, (int(x), p0[1]), (int(x), p1[1]), dark, line)
            cv2.line(image, (p0[0], int(y)), (p1[0], int(y)), dark, line)
    elif kind == "round":
        cv2.circle(image, (int(x), int(y)), int(size / 2), colour, -1, cv2.LINE_AA)
        cv2.circle(image, (int(x), int(y)), int(size / 2), dark, line, cv2.LINE_AA)
    elif kind == "plant":
        base = floor_y if floor_y is not None else height
        pot_top = int(base - size * 0.5)
        cv2.rectangle(image, (int(x - size * 0.25), pot_top), (int(x + size * 0.25), int(base)), colour, -1)
        leaf = (np.array([40, 120, 50]) + rng.uniform(-20, 20, 3)).tolist()
        for angle in np.linspace(-0.9, 0.9, 5):
            tip = (int(x + np.sin(angle) * size * 0.8), int(pot_top - np.cos(angle) * size * 1.1))
            cv2.ellipse(
                image,
                ((int(x) + tip[0]) // 2, (pot_top + tip[1]) // 2),
                (max(1, int(size * 0.1)), int(size * 0.55)),
                float(np.degrees(angle)),
                0,
                360,
                leaf,
                -1,
                cv2.LINE_AA,
            )
    else:  # shelf
        cv2.rectangle(image, (int(x - size), int(y)), (int(x + size), int(y + max(2, size * 0.1))), dark, -1)
