"""Other tools' keypoint layouts mapped to the one the ControlNet was trained on (OpenPose COCO-18 body,
21 points a hand, 70 face points).

Recognised by the number of points in a part, since the JSON files do not name their layout:

- body 18: OpenPose's COCO model, controlnet_aux / comfyui_controlnet_aux (OpenPose and DWPose
  preprocessors, which write DWPose's 18-point OpenPose body), our own files. Kept as it is.
- body 25: OpenPose's default BODY_25 (its doc/02_output.md: 0 Nose, 1 Neck, 2-4 right arm, 5-7 left arm,
  8 MidHip, 9-11 right leg, 12-14 left leg, 15 REye, 16 LEye, 17 REar, 18 LEar, 19-24 feet). MidHip and
  the feet have no COCO-18 place and are dropped.
- body 17 / 23: MS-COCO's 17 points (nose, eyes, ears, then left before right), alone or followed by
  COCO-WholeBody's 6 foot points, as rtmlib / DWPose-based tools write the first 23 of DWPose's 133. The
  neck, which COCO lacks, is the midpoint of the shoulders where both are seen (as DWPose's own
  conversion makes it).
- body 133: a whole COCO-WholeBody person in one list (body 17, feet 6, face 68, left hand 21, right
  hand 21), split into its parts.
- face 68: dlib/COCO-WholeBody faces without OpenPose's two pupils (they are left missing); 71: OpenPose's
  face with its background point (dropped).
"""

from __future__ import annotations

import numpy as np

from magicpose.poses.types import NUM_BODY, NUM_FACE, NUM_HAND

# COCO-18 index -> BODY_25 index
BODY_25_TO_COCO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
# COCO-18 index -> MS-COCO-17 index (None: the neck, made from the shoulders)
COCO_17_TO_COCO_18 = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
COCO_17_SHOULDERS = (5, 6)
WHOLE_BODY = 133  # COCO-WholeBody: body 17, feet 6, face 68, left hand 21, right hand 21
WHOLE_BODY_PARTS = {"body": (0, 23), "face": (23, 91), "left_hand": (91, 112), "right_hand": (112, 133)}

BODY_COUNTS = (NUM_BODY, 25, 17, 23, WHOLE_BODY)
FACE_COUNTS = (NUM_FACE, 68, 71)
EXPECTED = {
    "body": "18 (COCO-18), 25 (BODY_25), 17 or 23 (COCO / COCO-WholeBody) or 133 (whole body)",
    "left_hand": str(NUM_HAND),
    "right_hand": str(NUM_HAND),
    "face": "70, 68 or 71",
}


def counts(attribute: str) -> tuple[int, ...]:
    """The point counts a part may have."""
    return {"body": BODY_COUNTS, "face": FACE_COUNTS}.get(attribute, (NUM_HAND,))


def split_whole_body(points: np.ndarray) -> dict[str, np.ndarray]:
    """A 133-point COCO-WholeBody person as its parts (body still 23 points: `to_coco_18` maps it)."""
    return {name: points[start:end] for name, (start, end) in WHOLE_BODY_PARTS.items()}


def body_to_coco_18(points: np.ndarray) -> np.ndarray:
    """(N, 3) body points of a recognised layout as COCO-18."""
    if len(points) == NUM_BODY:
        return points
    if len(points) == 25:
        return points[list(BODY_25_TO_COCO_18)]
    coco = points[:17]
    out = np.zeros((NUM_BODY, 3))
    for target, source in enumerate(COCO_17_TO_COCO_18):
        if source is not None:
            out[target] = coco[source]
    left, right = coco[list(COCO_17_SHOULDERS)]
    if left[2] > 0 and right[2] > 0:
        out[1] = [(left[0] + right[0]) / 2, (left[1] + right[1]) / 2, min(left[2], right[2])]
    return out


def face_to_70(points: np.ndarray) -> np.ndarray:
    """68 points: the pupils (68, 69) left missing; 71: the background point dropped."""
    if len(points) == 68:
        return np.concatenate([points, np.zeros((2, 3))])
    return points[:NUM_FACE]
