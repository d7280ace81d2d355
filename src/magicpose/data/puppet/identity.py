"""Who a puppet is: body proportions, skin, hair, face colours and clothes, all drawn from one seed.

Lengths are in world centimetres (a typical adult is about 170 cm tall); the camera of a video
maps them to pixels with one scale, so a puppet's bone lengths never change within a video.
Thicknesses are fractions of the head's half-width, because the renderer measures everything
against the head it finds in the pose (it has no camera, only the pose).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

Colour = tuple[int, int, int]

HAIR_STYLES = ("short", "long", "bun", "ponytail", "afro", "bald", "bob")
PATTERNS = ("solid", "stripes", "checks", "dots")
SLEEVES = ("none", "short", "elbow", "long")
LEGWEAR = ("shorts", "knee", "long", "skirt")

# Skin tones spanning the Fitzpatrick scale (sRGB), jittered per identity.
_SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 98], [161, 102, 70], [120, 75, 50], [88, 56, 40]],
    dtype=np.float64,
)
_HAIR_COLOURS = np.array(
    [
        [20, 16, 14],
        [55, 36, 26],
        [96, 62, 38],
        [150, 95, 50],
        [220, 185, 120],
        [170, 170, 170],
        [140, 45, 30],
        [40, 60, 160],
        [200, 80, 150],
    ],
    dtype=np.float64,
)
_HAIR_WEIGHTS = np.array([6, 6, 4, 2, 3, 1, 2, 0.5, 0.5])
_EYE_COLOURS = np.array([[60, 40, 25], [90, 60, 30], [60, 100, 140], [70, 110, 70], [30, 25, 20]], dtype=np.float64)


@dataclass(frozen=True)
class Proportions:
    """Bone lengths and half-widths in world centimetres."""

    head: float  # half-width of the face, the unit of the face landmark template
    neck: float  # neck keypoint to the face centre
    torso: float  # neck keypoint to the middle of the hips
    shoulder: float  # half the distance between the shoulders
    hip: float  # half the distance between the hips
    upper_arm: float
    forearm: float
    hand: float  # wrist to the tip of the middle finger
    thigh: float
    shin: float
    arm_thickness: float  # full limb widths, in head half-widths
    leg_thickness: float
    torso_thickness: float  # how far the torso's outline stands outside the shoulder and hip points

    @property
    def standing_height(self) -> float:
        """Ankle to the top of the head when standing straight (the head's top is 1.35 heads above the face centre)."""
        return self.shin + self.thigh + self.torso + self.neck + 1.35 * self.head


@dataclass(frozen=True)
class Garment:
    colour: Colour
    second_colour: Colour  # stripes, checks and dots use it
    pattern: str
    pattern_period: float  # in head half-widths
    pattern_angle: float  # radians, relative to the torso


@dataclass(frozen=True)
class Identity:
    seed: int
    proportions: Proportions
    skin: Colour
    hair: Colour
    hair_style: str
    eyes: Colour
    lips: Colour
    top: Garment
    sleeves: str
    bottom: Garment
    legwear: str
    shoes: Colour

    def to_dict(self) -> dict:
        return asdict(self)


def _colour(values) -> Colour:
    return tuple(int(v) for v in np.clip(np.round(values), 0, 255))


def _random_clothing_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated or a muted colour: hue, saturation and value drawn in HSV."""
    hue = rng.uniform(0, 1)
    saturation = rng.choice([rng.uniform(0.05, 0.25), rng.uniform(0.4, 0.95)])
    value = rng.uniform(0.25, 0.95)
    # HSV -> RGB, the standard sextant formula.
    sextant, fraction = divmod(hue * 6, 1)
    p, q, t = value * (1 - saturation), value * (1 - saturation * fraction), value * (1 - saturation * (1 - fraction))
    rgb = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)][int(sextant) % 6]
    return np.array(rgb) * 255


def _garment(rng: np.random.Generator) -> Garment:
    colour = _random_clothing_colour(rng)
    second = _random_clothing_colour(rng)
    if np.abs(colour - second).sum() < 120:  # a pattern must be visible
        second = 255 - colour
    pattern = str(rng.choice(PATTERNS, p=[0.4, 0.25, 0.2, 0.15]))
    return Garment(
        colour=_colour(colour),
        second_colour=_colour(second),
        pattern=pattern,
        pattern_period=float(rng.uniform(0.5, 1.2)),
        pattern_angle=float(rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4])),
    )


def sample_identity(seed: int) -> Identity:
    """The identity with this seed; the same seed always gives the same puppet."""
    rng = np.random.default_rng([0x1D, int(seed)])
    size = rng.uniform(0.88, 1.12)  # overall body size
    head = rng.uniform(9.5, 11.5)
    proportions = Proportions(
        head=head,
        neck=size * rng.uniform(14, 17),
        torso=size * rng.uniform(46, 56),
        shoulder=size * rng.uniform(16, 22),
        hip=size * rng.uniform(10, 15),
        upper_arm=size * rng.uniform(27, 33),
        forearm=size * rng.uniform(24, 29),
        hand=size * rng.uniform(16, 19),
        thigh=size * rng.uniform(40, 48),
        shin=size * rng.uniform(38, 46),
        arm_thickness=rng.uniform(0.8, 1.2),
        leg_thickness=rng.uniform(1.1, 1.6),
        torso_thickness=rng.uniform(0.1, 0.5),
    )
    tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
    hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_WEIGHTS / _HAIR_WEIGHTS.sum())]
    skin = tone + rng.normal(0, 6, 3)
    return Identity(
        seed=int(seed),
        proportions=proportions,
        skin=_colour(skin),
        hair=_colour(hair + rng.normal(0, 8, 3)),
        hair_style=str(rng.choice(HAIR_STYLES, p=[0.22, 0.2, 0.12, 0.12, 0.1, 0.08, 0.16])),
        eyes=_colour(_EYE_COLOURS[rng.integers(len(_EYE_COLOURS))]),
        lips=_colour(skin * np.array([0.78, 0.52, 0.52]) + np.array([30, 0, 10])),
        top=_garment(rng),
        sleeves=str(rng.choice(SLEEVES)),
        bottom=_garment(rng),
        legwear=str(rng.choice(LEGWEAR, p=[0.2, 0.15, 0.5, 0.15])),
        shoes=_colour(_random_clothing_colour(rng) * 0.6),
    )
