"""The puppet renderer's drawing surface: a part-label map and a shade map, and the primitives a puppet is
made of, all at sub-pixel precision (OpenCV fixed point)."""

from __future__ import annotations

import cv2
import numpy as np

from magicpose.data.puppet.parts import Part

SHIFT = 4  # OpenCV fixed-point bits: sub-pixel positions for every primitive
ONE = 1 << SHIFT
RIM, BODY = 170, 235  # shade values at a limb's rim and along its middle (255 = unshaded)


class Canvas:
    """The label and shade maps, with the few primitives the puppet is made of."""

    def __init__(self, height: int, width: int):
        self.labels = np.zeros((height, width), np.uint8)
        self.shade = np.full((height, width), 255, np.uint8)

    @staticmethod
    def _fixed(points) -> np.ndarray:
        return np.round(np.asarray(points, dtype=np.float64).reshape(-1, 2) * ONE).astype(np.int32)

    def capsule(self, start, end, width: float, part: Part) -> None:
        """A limb: a thick segment with round ends, darker at the rim."""
        a, b = (tuple(int(v) for v in p) for p in self._fixed([start, end]))
        thickness = max(1, int(round(width)))
        cv2.line(self.labels, a, b, int(part), thickness, cv2.LINE_8, SHIFT)
        cv2.line(self.shade, a, b, RIM, thickness, cv2.LINE_8, SHIFT)
        cv2.line(self.shade, a, b, BODY, max(1, int(round(width * 0.55))), cv2.LINE_8, SHIFT)
        cv2.line(self.shade, a, b, 255, max(1, int(round(width * 0.2))), cv2.LINE_8, SHIFT)

    def polygon(self, points, part: Part, shade: int = BODY) -> None:
        fixed = [self._fixed(points)]
        cv2.fillPoly(self.labels, fixed, int(part), cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.shade, fixed, shade, cv2.LINE_8, SHIFT)

    def shaded_polygon(self, points, part: Part) -> None:
        """A body part with a rim: the polygon, then a copy shrunk towards its centre in a lighter shade."""
        points = np.asarray(points, dtype=np.float64)
        centre = points.mean(0)
        self.polygon(points, part, RIM)
        cv2.fillPoly(self.shade, [self._fixed(centre + 0.8 * (points - centre))], BODY, cv2.LINE_8, SHIFT)

    def polyline(self, points, width: float, part: Part, closed: bool = False) -> None:
        """One open (or closed) line through `points`, or several if given a list of point arrays."""
        lines = [self._fixed(p) for p in points] if isinstance(points, list) else [self._fixed(points)]
        thickness = max(1, int(round(width)))
        cv2.polylines(self.labels, lines, closed, int(part), thickness, cv2.LINE_8, SHIFT)
        cv2.polylines(self.shade, lines, closed, 255, thickness, cv2.LINE_8, SHIFT)

    def ellipse(self, centre, axes, angle_degrees: float, part: Part) -> None:
        c = tuple(int(v) for v in self._fixed(centre)[0])
        half = tuple(max(1, int(round(v * ONE))) for v in axes)
        cv2.ellipse(self.labels, c, half, angle_degrees, 0, 360, int(part), -1, cv2.LINE_8, SHIFT)
        cv2.ellipse(self.shade, c, half, angle_degrees, 0, 360, BODY, -1, cv2.LINE_8, SHIFT)

    def disc(self, centre, radius: float, part: Part, shade: int = BODY) -> None:
        c = tuple(int(v) for v in self._fixed(centre)[0])
        r = max(1, int(round(radius * ONE)))
        cv2.circle(self.labels, c, r, int(part), -1, cv2.LINE_8, SHIFT)
        cv2.circle(self.shade, c, r, shade, -1, cv2.LINE_8, SHIFT)
