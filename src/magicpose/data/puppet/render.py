"""Draw a puppet from a `Pose`: the pose is the only geometry, the identity only gives colours and shapes.

Drawing happens on two small maps at `supersample` times the output size: a part-label map (which
part covers each pixel, painter's order) and a shade map (limbs darker at their rims). Colours come
from the identity's palette and clothing patterns, and the frame is shrunk with area averaging,
which anti-aliases every edge at once. The output therefore comes with an exact part map and mask.

Sizes are measured against the head found in the pose (half the face width, `HeadFrame.scale`), so
the renderer needs no camera: a real person's pose drives a puppet just as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from magicpose.data.puppet.canvas import BODY, ONE, RIM, SHIFT, Canvas
from magicpose.data.puppet.face import (
    LEFT_BROW,
    LEFT_EYE,
    MOUTH_INNER,
    MOUTH_OUTER,
    RIGHT_BROW,
    RIGHT_EYE,
    HeadFrame,
    head_frame_from_body,
    head_frame_from_face,
)
from magicpose.data.puppet.identity import Garment, Identity
from magicpose.data.puppet.parts import Part
from magicpose.poses.types import Pose

_OUTLINE = 150  # edges between parts are darkened to this (of 255)


@dataclass
class PuppetImage:
    """One rendered frame: RGB (H, W, 3) uint8, person mask (H, W) bool, part labels (H, W) uint8 (`Part`)."""

    image: np.ndarray
    mask: np.ndarray
    parts: np.ndarray


def _present(points: np.ndarray, *indices: int) -> bool:
    return bool((points[list(indices), 2] > 0).all())


def _lerp(a, b, t):
    return np.asarray(a) + (np.asarray(b) - np.asarray(a)) * t


# ---------------------------------------------------------------- hair and head (face-frame shapes)
def _arc(radius_x: float, radius_y: float, centre_y: float, start: float, stop: float, count: int = 14) -> np.ndarray:
    angles = np.linspace(start, stop, count)
    return np.stack([radius_x * np.cos(angles), centre_y - radius_y * np.sin(angles)], 1)


_HAIRLINE = np.array(
    [[-1.0, -0.4], [-0.75, -0.72], [-0.3, -0.86], [0.0, -0.82], [0.35, -0.9], [0.8, -0.7], [1.02, -0.4]]
)


def _hair_shapes(style: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Face-frame polygons of the hair behind the head and over it, for a hair style."""
    cap = np.concatenate(
        [_arc(1.1, 1.32, -0.12, 0.0, np.pi), _HAIRLINE]
    )  # right ear, over the top, back along the hairline
    sides_left = np.array([[-1.12, -0.2], [-1.12, 0.55], [-0.9, 0.55], [-0.92, -0.4]])
    back, front = [], []
    if style == "bald":
        return back, front
    if style == "long":
        back.append(np.concatenate([_arc(1.28, 1.35, -0.15, 0.0, np.pi), [[-1.35, 2.3], [1.35, 2.3]]]))
        front += [cap, sides_left, sides_left * [-1, 1]]
    elif style == "bob":
        back.append(np.concatenate([_arc(1.22, 1.35, -0.15, 0.0, np.pi), [[-1.25, 0.75], [1.25, 0.75]]]))
        front += [cap, sides_left, sides_left * [-1, 1]]
    elif style == "bun":
        back.append(np.stack([0.42 * np.cos(t := np.linspace(0, 2 * np.pi, 16)), -1.5 + 0.42 * np.sin(t)], 1))
        front.append(cap)
    elif style == "ponytail":
        t = np.linspace(0, 2 * np.pi, 16)
        back.append(np.stack([1.05 + 0.35 * np.cos(t), 0.2 + 0.95 * np.sin(t)], 1))
        front.append(cap)
    elif style == "afro":
        t = np.linspace(0, 2 * np.pi, 24)
        back.append(np.stack([1.55 * np.cos(t), -0.6 + 1.4 * np.sin(t)], 1))
        front.append(cap)
    else:  # short
        front.append(np.concatenate([_arc(1.06, 1.26, -0.12, 0.0, np.pi), _HAIRLINE]))
    return back, front


def _head_outline() -> np.ndarray:
    """Face-frame outline of the skull above the jaw line: from the image-right ear over the top to the left ear."""
    return _arc(1.0, 1.2, -0.15, 0.0, np.pi)


# ---------------------------------------------------------------- clothing patterns
def _pattern_mask(garment: Garment, height: int, width: int, origin, angle: float, unit: float) -> np.ndarray | None:
    """Where a garment shows its second colour: pattern coordinates anchored to the body, so it moves with it."""
    if garment.pattern == "solid":
        return None
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs -= origin[0]
    ys -= origin[1]
    period = max(garment.pattern_period * unit, 2.0)
    cos, sin = np.cos(angle + garment.pattern_angle), np.sin(angle + garment.pattern_angle)
    u = (xs * cos + ys * sin) / period
    v = (-xs * sin + ys * cos) / period
    if garment.pattern == "stripes":
        return (np.floor(v) % 2) == 1
    if garment.pattern == "checks":
        return ((np.floor(u) + np.floor(v)) % 2) == 1
    du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5  # dots
    return du * du + dv * dv < 0.09


def _apply_pattern(rgb, labels, part: Part, garment: Garment, origin, angle: float, unit: float) -> None:
    if garment.pattern == "solid":
        return
    region = (labels == part).view(np.uint8)
    x, y, w, h = cv2.boundingRect(region)
    if w == 0 or h == 0:
        return
    second = _pattern_mask(garment, h, w, (origin[0] - x, origin[1] - y), angle, unit)
    window = (region[y : y + h, x : x + w] > 0) & second
    rgb[y : y + h, x : x + w][window] = garment.second_colour


# ---------------------------------------------------------------- the body
def _draw_hand(canvas: Canvas, hand: np.ndarray, wrist: np.ndarray | None, forearm_width: float) -> None:
    if not _present(hand, 0, 5, 9, 13, 17):
        if wrist is not None:
            canvas.disc(wrist, forearm_width * 0.75, Part.SKIN)
        return
    length = np.linalg.norm(hand[9, :2] - hand[0, :2]) / 0.5
    canvas.polygon(hand[[0, 1, 5, 9, 13, 17], :2], Part.SKIN)
    canvas.capsule(hand[0, :2], _lerp(hand[0, :2], hand[9, :2], 0.6), 0.35 * length, Part.SKIN)
    fingers = [
        hand[base : base + 4, :2] for base in (1, 5, 9, 13, 17) if _present(hand, base, base + 1, base + 2, base + 3)
    ]
    if fingers:  # one call for all fingers: hands are many small strokes
        canvas.polyline(fingers, max(1.0, 0.1 * length), Part.SKIN)


def _draw_leg(canvas, body, hip, knee, ankle, identity: Identity, width: float) -> None:
    if not _present(body, hip, knee, ankle):
        return
    h, k, a = body[hip, :2], body[knee, :2], body[ankle, :2]
    canvas.capsule(h, k, width, Part.SKIN)
    canvas.capsule(k, a, width * 0.85, Part.SKIN)
    cover = {"shorts": 0.5, "knee": 1.15, "long": 2.0, "skirt": 0.0}[identity.legwear]
    if cover > 0:
        end = _lerp(h, k, cover) if cover <= 1 else _lerp(k, a, cover - 1)
        canvas.capsule(h, end if cover <= 1 else k, width * 1.12, Part.BOTTOM)
        if cover > 1:
            canvas.capsule(k, end, width * 0.97, Part.BOTTOM)
    # A shoe: an ellipse under the ankle, its toe turned outwards (feet splay in a frontal view).
    outward = np.sign(a[0] - body[1, 0]) if _present(body, 1) else 1.0
    canvas.ellipse(
        a + np.array([outward * 0.3 * width, 0.2 * width]), (0.75 * width, 0.42 * width), outward * 12.0, Part.SHOES
    )


def _draw_arm(canvas, body, shoulder, elbow, wrist, identity: Identity, width: float) -> None:
    if not _present(body, shoulder, elbow):
        return
    s, e = body[shoulder, :2], body[elbow, :2]
    canvas.capsule(s, e, width, Part.SKIN)
    has_forearm = _present(body, wrist)
    if has_forearm:
        canvas.capsule(e, body[wrist, :2], width * 0.85, Part.SKIN)
    cover = {"none": 0.0, "short": 0.45, "elbow": 1.1, "long": 1.9}[identity.sleeves]
    if cover > 0:
        canvas.capsule(s, _lerp(s, e, min(cover, 1.0)), width * 1.15, Part.TOP)
        if cover > 1 and has_forearm:
            canvas.capsule(e, _lerp(e, body[wrist, :2], cover - 1), width * 1.0, Part.TOP)


def _draw_torso(canvas, body, identity: Identity, unit: float) -> tuple[np.ndarray, float] | None:
    """Trunk and pelvis; returns the anchor (neck) and angle of the top's pattern."""
    if not _present(body, 1, 2, 5):
        return None
    neck, right_shoulder, left_shoulder = body[1, :2], body[2, :2], body[5, :2]
    has_hips = _present(body, 8, 11)
    if has_hips:
        right_hip, left_hip = body[8, :2], body[11, :2]
    else:  # upper-body crops: continue the trunk downwards out of the frame
        down = np.array([0.0, 1.0]) * 6 * unit
        right_hip, left_hip = right_shoulder + down, left_shoulder + down
    across = left_shoulder - right_shoulder
    across /= max(np.linalg.norm(across), 1e-6)
    pelvis = (right_hip + left_hip) / 2
    down = pelvis - neck
    down /= max(np.linalg.norm(down), 1e-6)
    rim = identity.proportions.torso_thickness * unit
    if has_hips:
        leg_width = identity.proportions.leg_thickness * unit
        pelvis_shape = [
            right_hip - across * leg_width * 0.6,
            left_hip + across * leg_width * 0.6,
            left_hip + down * leg_width * 0.8,
            right_hip + down * leg_width * 0.8,
        ]
        canvas.shaded_polygon(pelvis_shape, Part.BOTTOM)
        if identity.legwear == "skirt":
            hem = identity.proportions.thigh / identity.proportions.head * unit * 0.6
            flare = across * (leg_width * 1.3)
            canvas.shaded_polygon(
                [
                    right_hip - across * leg_width * 0.6,
                    left_hip + across * leg_width * 0.6,
                    left_hip + flare + down * hem,
                    right_hip - flare + down * hem,
                ],
                Part.BOTTOM,
            )
    hem_drop = down * 0.35 * unit
    canvas.shaded_polygon(
        [
            right_shoulder - across * rim * 0.5 - down * 0.25 * unit,
            left_shoulder + across * rim * 0.5 - down * 0.25 * unit,
            left_hip + across * rim + hem_drop,
            right_hip - across * rim + hem_drop,
        ],
        Part.TOP,
    )
    shoulder_width = max(2.0, 0.9 * unit)
    canvas.capsule(right_shoulder, left_shoulder, shoulder_width, Part.TOP)
    # The trapezius rises from the shoulders to the base of the neck.
    collar = neck - down * 0.55 * unit
    canvas.polygon(
        [
            right_shoulder - down * 0.3 * unit,
            collar - across * 0.6 * unit,
            collar + across * 0.6 * unit,
            left_shoulder - down * 0.3 * unit,
        ],
        Part.TOP,
    )
    # A round neckline: the skin of the neck shows below the collar.
    centre = tuple(int(v) for v in Canvas._fixed(collar)[0])
    axes = (int(0.45 * unit * ONE), int(0.35 * unit * ONE))
    angle = float(np.degrees(np.arctan2(across[1], across[0])))
    cv2.ellipse(canvas.labels, centre, axes, angle, 0, 180, int(Part.SKIN), -1, cv2.LINE_8, SHIFT)
    cv2.ellipse(canvas.shade, centre, axes, angle, 0, 180, BODY, -1, cv2.LINE_8, SHIFT)
    return neck, float(np.arctan2(across[1], across[0]))


def _draw_face(canvas: Canvas, face: np.ndarray, head: HeadFrame) -> None:
    unit = head.scale
    # Eyes: white, iris at the pupil, then the upper lid; a closed eye is just the lid line.
    for eye, pupil in ((LEFT_EYE, 68), (RIGHT_EYE, 69)):
        lids = face[eye, :2]
        opening = np.linalg.norm((lids[1] + lids[2]) / 2 - (lids[4] + lids[5]) / 2)
        if opening > 0.06 * unit:
            canvas.polygon(lids, Part.EYE_WHITE, 255)
            radius = min(0.11 * unit, 0.55 * opening)
            if face[pupil, 2] > 0:
                canvas.disc(face[pupil, :2], radius, Part.IRIS, 255)
        canvas.polyline(lids[[0, 1, 2, 3]], max(1.0, 0.06 * unit), Part.BROW)
    for brow in (LEFT_BROW, RIGHT_BROW):
        canvas.polyline(face[brow, :2], max(1.0, 0.1 * unit), Part.BROW)
    # The nose is only a shadow under its tip.
    cv2.polylines(
        canvas.shade,
        [Canvas._fixed(face[31:36, :2])],
        False,
        RIM,
        max(1, int(round(0.06 * unit))),
        cv2.LINE_8,
        SHIFT,
    )
    canvas.polygon(face[MOUTH_OUTER, :2], Part.LIPS, 245)
    inner = face[MOUTH_INNER, :2]
    if np.linalg.norm(inner[2] - inner[6]) > 0.04 * unit:
        canvas.polygon(inner, Part.MOUTH, 255)
    else:
        canvas.polyline(inner[[0, 1, 2, 3, 4]], max(1.0, 0.04 * unit), Part.MOUTH)


def _draw_head(canvas: Canvas, pose: Pose, identity: Identity, head: HeadFrame) -> None:
    face = pose.face
    unit = head.scale
    has_face = _present(face, *range(0, 17), 30, *range(36, 48))
    hair_shift = np.array([-0.12 * np.sin(head.yaw), 0.0])  # the skull turns less than the features
    if has_face:
        for ear in (1, 15):
            canvas.disc(face[ear, :2] + (face[ear, :2] - head.centre) * 0.05, 0.25 * unit, Part.SKIN)
        skull = head.to_pixels(_head_outline() + hair_shift)
        canvas.shaded_polygon(np.concatenate([face[0:17, :2], skull]), Part.SKIN)
        _draw_face(canvas, face, head)
    else:
        canvas.shaded_polygon(
            head.to_pixels(np.stack([np.cos(t := np.linspace(0, 2 * np.pi, 24)), -0.2 + 1.15 * np.sin(t)], 1)),
            Part.SKIN,
        )
    for shape in _hair_shapes(identity.hair_style)[1]:
        canvas.polygon(head.to_pixels(shape + hair_shift), Part.HAIR)


def _head_of(pose: Pose) -> HeadFrame | None:
    if _present(pose.face, 8, *range(36, 48)):
        return head_frame_from_face(pose.face)
    return head_frame_from_body(pose.body)


def _palette_lut(identity: Identity) -> np.ndarray:
    """(1, 256, 3) colour lookup table from part label to the identity's colour."""
    lut = np.zeros((1, 256, 3), np.uint8)
    palette = _palette(identity)
    lut[0, : len(palette)] = palette
    return lut


def _palette(identity: Identity) -> np.ndarray:
    brow = np.array(identity.hair) * 0.6 if identity.hair_style != "bald" else np.array(identity.skin) * 0.45
    return np.array(
        [
            (0, 0, 0),
            identity.skin,
            identity.hair,
            identity.top.colour,
            identity.bottom.colour,
            identity.shoes,
            (242, 240, 232),
            identity.eyes,
            brow,
            identity.lips,
            (80, 18, 28),
        ],
        dtype=np.uint8,
    )


def render_puppet(identity: Identity, pose: Pose, background: np.ndarray, supersample: int = 2) -> PuppetImage:
    """Draw `identity` in `pose` (pixel coordinates of `background`, an (H, W, 3) uint8 image).

    The drawing is done at `supersample` times the size and area-averaged down (anti-aliasing). Parts
    of the pose that are missing are not drawn; a pose without any head draws no head.
    """
    height, width = background.shape[:2]
    k = int(supersample)
    big = pose.transformed(float(k), np.array([(k - 1) / 2, (k - 1) / 2]))  # pixel centres stay centred
    canvas = Canvas(height * k, width * k)
    head = _head_of(big)
    unit = head.scale if head is not None else max(1.0, 0.02 * height * k)
    p = identity.proportions
    body = big.body
    if head is not None:
        for shape in _hair_shapes(identity.hair_style)[0]:
            canvas.polygon(head.to_pixels(shape), Part.HAIR)
        if _present(body, 1):
            chin = head.to_pixels([[0.0, 0.7]])[0]
            canvas.capsule(body[1, :2], chin, 1.1 * unit, Part.SKIN)
    leg_width, arm_width = p.leg_thickness * unit, p.arm_thickness * unit
    for hip, knee, ankle in ((8, 9, 10), (11, 12, 13)):
        _draw_leg(canvas, body, hip, knee, ankle, identity, leg_width)
    top_anchor = _draw_torso(canvas, body, identity, unit)
    for (shoulder, elbow, wrist), hand in (((2, 3, 4), big.right_hand), ((5, 6, 7), big.left_hand)):
        _draw_arm(canvas, body, shoulder, elbow, wrist, identity, arm_width)
        _draw_hand(canvas, hand, body[wrist, :2] if _present(body, wrist) else None, arm_width * 0.85)
    if head is not None:
        _draw_head(canvas, big, identity, head)

    labels = canvas.labels
    composed = cv2.resize(background, (width * k, height * k), interpolation=cv2.INTER_NEAREST)
    # Colour only the person's bounding box (a full-body puppet covers a fraction of the frame).
    x, y, w, h = cv2.boundingRect(labels)
    if w > 0 and h > 0:
        x0, y0 = max(x - 1, 0), max(y - 1, 0)
        box = (slice(y0, y + h + 1), slice(x0, x + w + 1))
        local, offset = labels[box], np.array([x0, y0])
        rgb = cv2.LUT(cv2.merge([local, local, local]), _palette_lut(identity))
        if top_anchor is not None:
            _apply_pattern(rgb, local, Part.TOP, identity.top, top_anchor[0] - offset, top_anchor[1], unit)
            pelvis = (body[8, :2] + body[11, :2]) / 2 if _present(body, 8, 11) else top_anchor[0]
            _apply_pattern(rgb, local, Part.BOTTOM, identity.bottom, pelvis - offset, top_anchor[1], unit)
        shade = cv2.blur(canvas.shade[box], (3, 3))
        # Outlines: wherever a 2x2 neighbourhood holds two different parts.
        square = np.ones((2, 2), np.uint8)
        edges = cv2.dilate(local, square) != cv2.erode(local, square)
        shade[edges] = np.minimum(shade[edges], _OUTLINE)
        shaded = cv2.multiply(rgb, cv2.merge([shade, shade, shade]), scale=1 / 255)
        cv2.copyTo(shaded, (local > 0).view(np.uint8), composed[box])
    person = (labels > 0).view(np.uint8)
    image = cv2.resize(composed, (width, height), interpolation=cv2.INTER_AREA)
    coverage = cv2.resize(person * np.uint8(255), (width, height), interpolation=cv2.INTER_AREA)
    return PuppetImage(image=image, mask=coverage >= 128, parts=labels[k // 2 :: k, k // 2 :: k].copy())
