"""Motions: dance-like joint-angle curves (smooth, periodic, varied) and random plausible static poses.

A dance is a loop of "moves". Each move is a base posture plus two harmonics of the beat for every
joint (a cycle is two beats), so within a move the motion is periodic and smooth; consecutive moves
cross-fade over one beat with a smoothstep, so the whole dance stays smooth and repeats after the
last move. Expressions run on their own clocks: the mouth opens and closes as if singing, smiles
come and go, and the eyes blink every few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magicpose.data.puppet.skeleton import JOINT_INDEX, JOINTS

#: Plausible range (low, high) of every joint for static poses; dances stay inside it too.
STATIC_RANGES = {
    "lean": (-0.2, 0.2),
    "head_tilt": (-0.3, 0.3),
    "head_yaw": (-0.45, 0.45),
    "head_pitch": (-0.2, 0.2),
    "right_arm": (-0.15, 2.9),
    "right_elbow": (-2.2, 2.2),
    "left_arm": (-0.15, 2.9),
    "left_elbow": (-2.2, 2.2),
    "right_wrist": (-0.6, 0.6),
    "left_wrist": (-0.6, 0.6),
    "right_curl": (0.0, 1.0),
    "left_curl": (0.0, 1.0),
    "spread": (0.0, 1.0),
    "right_leg": (-0.05, 0.7),
    "right_knee": (0.0, 0.9),
    "left_leg": (-0.05, 0.7),
    "left_knee": (0.0, 0.9),
    "sway": (-12.0, 12.0),
    "mouth_open": (0.0, 1.0),
    "smile": (-0.2, 1.0),
    "blink": (0.0, 1.0),
    "brow_raise": (-0.3, 1.0),
    "gaze_x": (-1.0, 1.0),
    "gaze_y": (-1.0, 1.0),
}
_LOW = np.array([STATIC_RANGES[name][0] for name in JOINTS])
_HIGH = np.array([STATIC_RANGES[name][1] for name in JOINTS])
_EXPRESSION = [JOINT_INDEX[name] for name in ("mouth_open", "smile", "blink", "brow_raise", "gaze_x", "gaze_y")]
# Largest swing (per harmonic) of each body joint in a dance, as a fraction of its static range.
_DANCE_SWING = {
    "lean": 0.35,
    "head_tilt": 0.3,
    "head_yaw": 0.3,
    "head_pitch": 0.2,
    "right_arm": 0.22,
    "right_elbow": 0.2,
    "left_arm": 0.22,
    "left_elbow": 0.2,
    "right_wrist": 0.3,
    "left_wrist": 0.3,
    "right_curl": 0.3,
    "left_curl": 0.3,
    "spread": 0.3,
    "right_leg": 0.3,
    "right_knee": 0.35,
    "left_leg": 0.3,
    "left_knee": 0.35,
    "sway": 0.45,
}


def random_static_angles(rng: np.random.Generator) -> np.ndarray:
    """A random plausible pose and expression: joints uniform in their ranges, eyes mostly open, mouth mostly shut."""
    angles = rng.uniform(_LOW, _HIGH)
    angles[JOINT_INDEX["blink"]] = 1.0 if rng.uniform() < 0.1 else 0.0
    angles[JOINT_INDEX["mouth_open"]] = rng.uniform() ** 2
    return angles


@dataclass(frozen=True)
class Move:
    base: np.ndarray  # (J,)
    amplitude: np.ndarray  # (J, 2): first and second harmonic of the two-beat cycle
    phase: np.ndarray  # (J, 2)


def _random_move(rng: np.random.Generator) -> Move:
    joints = len(JOINTS)
    span = _HIGH - _LOW
    base = rng.uniform(_LOW + 0.2 * span, _HIGH - 0.2 * span)
    base[JOINT_INDEX["sway"]] = 0.0
    amplitude = np.zeros((joints, 2))
    phase = rng.uniform(0, 2 * np.pi, (joints, 2))
    for name, swing in _DANCE_SWING.items():
        amplitude[JOINT_INDEX[name]] = rng.uniform(0, swing, 2) * span[JOINT_INDEX[name]] * np.array([1.0, 0.5])
    # Arms move together: mirrored, in counter-phase, or each on its own.
    style = rng.choice(["mirror", "alternate", "free"])
    if style != "free":
        shift = 0.0 if style == "mirror" else np.pi
        for right, left in (("right_arm", "left_arm"), ("right_elbow", "left_elbow"), ("right_leg", "left_leg")):
            i, j = JOINT_INDEX[right], JOINT_INDEX[left]
            base[j], amplitude[j] = base[i], amplitude[i]
            phase[j] = phase[i] + shift * np.array([1, 2])
    return Move(base=base, amplitude=amplitude, phase=phase)


@dataclass(frozen=True)
class DanceMotion:
    """A dance that can be evaluated at any time t (seconds); periodic with period `period` seconds."""

    seed: int
    bpm: float
    beats_per_move: int
    moves: tuple[Move, ...]
    blink_period: float
    blink_phase: float
    expression_rates: np.ndarray  # (4,) Hz: mouth (two), smile, gaze
    expression_phases: np.ndarray  # (4,)

    @property
    def beat(self) -> float:
        return 60.0 / self.bpm

    @property
    def period(self) -> float:
        return self.beat * self.beats_per_move * len(self.moves)

    def _move_angles(self, move: Move, t: float) -> np.ndarray:
        cycle = 2 * np.pi * t / (2 * self.beat)
        harmonics = np.array([cycle, 2 * cycle])
        return move.base + (move.amplitude * np.sin(harmonics + move.phase)).sum(1)

    def angles_at(self, t: float) -> np.ndarray:
        """(J,) joint values at time t: the current move cross-faded into the next over the last beat."""
        move_duration = self.beat * self.beats_per_move
        index, local = divmod(t % self.period, move_duration)
        current, following = self.moves[int(index)], self.moves[(int(index) + 1) % len(self.moves)]
        fade = np.clip((local - (move_duration - self.beat)) / self.beat, 0.0, 1.0)
        fade = fade * fade * (3 - 2 * fade)  # smoothstep: zero slope at both ends keeps velocities continuous
        angles = (1 - fade) * self._move_angles(current, t) + fade * self._move_angles(following, t)
        angles[_EXPRESSION] = self._expression_at(t)
        return np.clip(angles, _LOW, _HIGH)

    def _expression_at(self, t: float) -> np.ndarray:
        rates, phases = self.expression_rates, self.expression_phases
        waves = np.sin(2 * np.pi * rates * t + phases)
        mouth = np.clip(1.6 * (0.5 + 0.5 * waves[0]) * (0.5 + 0.5 * waves[1]) - 0.35, 0.0, 1.0)
        smile = 0.4 + 0.6 * waves[2]
        since_blink = (t - self.blink_phase) % self.blink_period
        distance = min(since_blink, self.blink_period - since_blink)
        blink = max(0.0, 1.0 - distance / 0.1)  # a 0.2 s blink
        brow = 0.6 * mouth + 0.2 * waves[2]
        return np.array([mouth, smile, blink, brow, 0.6 * waves[3], 0.3 * np.cos(2 * np.pi * rates[3] * t)])

    def angles(self, num_frames: int, fps: float, start: float = 0.0) -> np.ndarray:
        """(num_frames, J) joint values sampled at `fps` from time `start`."""
        return np.stack([self.angles_at(start + i / fps) for i in range(num_frames)])


def sample_dance(seed: int) -> DanceMotion:
    """The dance with this seed (tempo 80-130 bpm, 3-5 moves of 4 or 8 beats)."""
    rng = np.random.default_rng([0xDA, int(seed)])
    moves = tuple(_random_move(rng) for _ in range(int(rng.integers(3, 6))))
    return DanceMotion(
        seed=int(seed),
        bpm=float(rng.uniform(80, 130)),
        beats_per_move=int(rng.choice([4, 8])),
        moves=moves,
        blink_period=float(rng.uniform(2.0, 4.5)),
        blink_phase=float(rng.uniform(0, 2)),
        expression_rates=rng.uniform([0.3, 0.7, 0.1, 0.05], [0.9, 1.6, 0.4, 0.3]),
        expression_phases=rng.uniform(0, 2 * np.pi, 4),
    )
