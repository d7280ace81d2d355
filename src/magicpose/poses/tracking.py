"""Which person drives: choose one on the first frame where anyone appears, then follow them.

Every frame gives candidate people (boxes, with a body pose where the pose model found one;
`detect.py` finds them). `PeopleTracker` links candidates across frames into tracks, the way SORT
(Bewley et al. 2016) and DeepSORT (Wojke et al. 2017) do, with a cost per (track, candidate) pair of

    (1 - IoU(predicted box, box)) + centre distance / track height + 2 * Bhattacharyya(colours)

under gates on distance, size and colour, solved as an assignment (Hungarian). A track predicts its
box at constant velocity; it survives unseen for `max_missed` (an occlusion, a crossing) with its
distance gate widening; its colour model (an HSV histogram of the torso region) is updated only
while no other candidate overlaps it, so a crossing does not blend two people's clothes. The chosen
person's track is never dropped: when they come back from behind someone, the gates let them be
found again by position and colour.

`person_record` is what a PoseSequence stores about the followed person (`sequence.person`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from magicpose.errors import InputError
from magicpose.poses.mediapipe_mapping import map_body
from magicpose.poses.types import Pose

PERSON_CHOICES = ("largest", "center")
_INFINITE = 1e6


def parse_person(value: str | int) -> str | int:
    """ "largest", "center" or a 0-based index (int or digits) into the people of the first frame."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    text = str(value).strip().lower()
    if text in PERSON_CHOICES:
        return text
    if text.isdigit():
        return int(text)
    raise InputError(f"--person must be largest, center or a person's index (0, 1, ...), got {value!r}")


def pose_box(pose: Pose | None) -> np.ndarray | None:
    """(x0, y0, x1, y1) around the present points of a pose, or None without any."""
    if pose is None:
        return None
    points = pose.present_points()
    if len(points) < 2:
        return None
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` (N, 4) with every box of `b` (M, 4)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area = lambda boxes: np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _legs(pose: Pose | None) -> np.ndarray | None:
    """Hips to knees (4, 2), the trousers or skirt."""
    if pose is None or (pose.body[[8, 11], 2] <= 0).any():
        return None
    body = pose.body
    hips = body[[8, 11], :2]
    if (body[[9, 12], 2] > 0).all():
        knees = body[[12, 9], :2]
    else:
        knees = hips[::-1] + [0.0, 1.5 * np.linalg.norm(hips[0] - hips[1])]
    return np.vstack([hips, knees])


def _histogram(hsv: np.ndarray, quad: np.ndarray) -> np.ndarray | None:
    mask = np.zeros(hsv.shape[:2], np.uint8)
    centre = quad.mean(axis=0)
    cv2.fillConvexPoly(mask, np.round(centre + 0.8 * (quad - centre)).astype(np.int32), 1)  # shrunk: no background
    if mask.sum() < 4:
        return None
    histogram = cv2.calcHist([hsv], [0, 1, 2], mask, [16, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    return histogram / histogram.sum()


def colours(rgb: np.ndarray, box: np.ndarray, pose: Pose | None = None) -> np.ndarray | None:
    """A person's colours: HSV histograms (16 hue x 4 saturation x 4 value) of the upper body (the
    shoulders-hips quadrilateral of their pose) and of the legs (hips to knees), each weighing half.
    Without a pose, or a part of it, the box stands in (its middle at 20-50 % and 55-85 % of its height)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    rectangle = lambda top, bottom: np.array(  # noqa: E731
        [
            [x0 + 0.3 * w, y0 + top * h],
            [x1 - 0.3 * w, y0 + top * h],
            [x1 - 0.3 * w, y0 + bottom * h],
            [x0 + 0.3 * w, y0 + bottom * h],
        ]
    )
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    parts = []
    for quad, fallback in ((torso(pose), rectangle(0.2, 0.5)), (_legs(pose), rectangle(0.55, 0.85))):
        histogram = _histogram(hsv, quad) if quad is not None else None
        histogram = histogram if histogram is not None else _histogram(hsv, fallback)
        if histogram is None:
            return None
        parts.append(0.5 * histogram)
    return np.concatenate(parts)


def colour_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Bhattacharyya distance of two histograms (0 same, 1 disjoint); 0.5 when either is unknown."""
    if a is None or b is None:
        return 0.5
    return float(np.sqrt(max(0.0, 1.0 - np.sqrt(a * b).sum())))


@dataclass
class Candidate:
    """One person seen in one frame: a box, a body pose when the pose model gave one, a person mask."""

    box: np.ndarray
    pose: Pose | None = None
    mask: np.ndarray | None = None  # (H, W) bool, the person's pixels, where known
    appearance: np.ndarray | None = None


@dataclass
class Track:
    id: int
    box: np.ndarray
    appearance: np.ndarray | None
    last_frame: int
    anchor: np.ndarray | None = None  # the colours of the first frames, against drift
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1
    boxes: dict = field(default_factory=dict)

    def predict(self, frame: int, hold: int) -> np.ndarray:
        """Box at `frame`, moving on at the last velocity for at most `hold` frames."""
        return self.box + self.velocity * min(frame - self.last_frame, hold)

    @property
    def height(self) -> float:
        return max(float(self.box[3] - self.box[1]), 1.0)


def choose(candidates: list[Candidate], how: str | int, width: int, height: int) -> int:
    """Index of the chosen candidate. Candidates are numbered left to right (box centres)."""
    order = sorted(range(len(candidates)), key=lambda i: candidates[i].box[0] + candidates[i].box[2])
    if isinstance(how, int):
        if how >= len(candidates):
            raise InputError(
                f"--person {how} asks for person {how}, but the first frame with people shows "
                f"{len(candidates)} (numbered 0 to {len(candidates) - 1} from left to right); "
                "pass a smaller index, largest or center"
            )
        return order[how]
    boxes = np.array([c.box for c in candidates])
    if how == "largest":
        return int(np.argmax(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)))
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return int(np.argmin(np.linalg.norm(centres - np.array([width, height]) / 2, axis=1)))


class PeopleTracker:
    """Links per-frame candidates into tracks (see the module docstring). `fps` sets the time scales."""

    def __init__(self, fps: float, *, max_missed_seconds: float = 2.0, min_hits: int = 3):
        self.max_missed = max(1, int(round(max_missed_seconds * fps)))
        self.hold = max(1, int(round(0.5 * fps)))  # a lost track coasts for half a second, then waits
        self.min_hits = min_hits
        self.tracks: list[Track] = []
        self.keep: set[int] = set()  # tracks never dropped (the chosen person)
        self.confirmed: set[int] = set()
        self._next = 0

    def _cost(self, track: Track, candidate: Candidate, frame: int, overlap: float) -> float:
        predicted = track.predict(frame, self.hold)
        missed = frame - track.last_frame
        centre = lambda box: (box[:2] + box[2:]) / 2  # noqa: E731
        distance = np.linalg.norm(centre(predicted) - centre(candidate.box)) / track.height
        size = (candidate.box[3] - candidate.box[1]) / track.height
        colour = colour_distance(track.appearance, candidate.appearance)
        if track.anchor is not None:
            colour = 0.5 * (colour + colour_distance(track.anchor, candidate.appearance))
        if distance > 0.6 + 0.1 * missed or not 0.5 < size < 2.0 or colour > 0.7:
            return _INFINITE
        return (1.0 - overlap) + distance + 2.0 * colour

    def update(self, frame: int, candidates: list[Candidate]) -> list[int]:
        """Assign this frame's candidates to tracks; returns the track id of each candidate."""
        ids = [-1] * len(candidates)
        if self.tracks and candidates:
            predicted = np.array([t.predict(frame, self.hold) for t in self.tracks])
            overlaps = iou_matrix(predicted, np.array([c.box for c in candidates]))
            cost = np.array(
                [
                    [self._cost(t, c, frame, overlaps[i, j]) for j, c in enumerate(candidates)]
                    for i, t in enumerate(self.tracks)
                ]
            )
            rows, columns = linear_sum_assignment(cost)
            crowded = iou_matrix([c.box for c in candidates], [c.box for c in candidates]) - np.eye(len(candidates))
            for i, j in zip(rows, columns):
                if cost[i, j] >= _INFINITE:
                    continue
                self._absorb(self.tracks[i], candidates[j], frame, alone=crowded[j].max(initial=0.0) < 0.05)
                ids[j] = self.tracks[i].id
        unmatched = [t for t in self.tracks if t.id not in ids and (t.hits >= self.min_hits or t.id in self.keep)]
        covered = (
            iou_matrix([c.box for c in candidates], [t.predict(frame, self.hold) for t in unmatched]).max(axis=1)
            if unmatched and candidates
            else np.zeros(len(candidates))
        )
        for j, candidate in enumerate(candidates):
            if ids[j] < 0 and covered[j] < 0.3:  # no new track on top of a known person who went unmatched
                track = Track(self._next, candidate.box.copy(), candidate.appearance, frame)
                track.boxes[frame] = candidate.box.copy()
                self._next += 1
                self.tracks.append(track)
                ids[j] = track.id
        self.tracks = [t for t in self.tracks if t.id in self.keep or frame - t.last_frame <= self.max_missed]
        for track in self.tracks:
            if track.hits >= self.min_hits:
                self.confirmed.add(track.id)
        return ids

    def _absorb(self, track: Track, candidate: Candidate, frame: int, alone: bool) -> None:
        gap = frame - track.last_frame
        step = (candidate.box - track.box) / max(gap, 1)
        track.velocity = step if track.hits == 1 else 0.6 * track.velocity + 0.4 * step
        track.box, track.last_frame, track.hits = candidate.box.copy(), frame, track.hits + 1
        track.boxes[frame] = candidate.box.copy()
        if candidate.appearance is None:
            return
        if track.appearance is None:
            track.appearance = candidate.appearance
        elif alone and colour_distance(track.appearance, candidate.appearance) < 0.35:
            # only clear views of the same colours teach the model (a merged box would blend two people)
            track.appearance = 0.9 * track.appearance + 0.1 * candidate.appearance
        if track.hits == self.min_hits:
            track.anchor = track.appearance.copy()

    def confirm(self, track_id: int, candidate: Candidate, frame: int) -> None:
        """Tell a track where its person was found by other means this frame (not an appearance lesson)."""
        track = self.track(track_id)
        if track is not None:
            self._absorb(track, candidate, frame, alone=False)

    def track(self, track_id: int) -> Track | None:
        return next((t for t in self.tracks if t.id == track_id), None)

    @property
    def people_seen(self) -> int:
        """Tracks seen on at least `min_hits` frames: the number of different people in the video."""
        return len(self.confirmed)


# Pairs of COCO-18 joints whose segments make up a body silhouette, for painting a found person over.
_SILHOUETTE = ((1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13))


def torso(pose: Pose | None) -> np.ndarray | None:
    """The torso quadrilateral (shoulders, hips; (4, 2)), the best colour sample of a person's clothes."""
    if pose is None:
        return None
    body = pose.body
    corners = [2, 5, 11, 8]
    if (body[[2, 5], 2] <= 0).any():
        return None
    if (body[[8, 11], 2] > 0).all():
        return body[corners, :2].copy()
    down = np.array([0.0, 1.5 * np.linalg.norm(body[2, :2] - body[5, :2])])  # hips unseen: a shoulder-wide block
    return np.stack([body[2, :2], body[5, :2], body[5, :2] + down, body[2, :2] + down])


def silhouette(pose: Pose, width: int, height: int) -> np.ndarray:
    """(H, W) bool: thick limbs, the torso and the head drawn from a body pose."""
    canvas = np.zeros((height, width), np.uint8)
    box = pose_box(pose)
    size = max(box[3] - box[1], box[2] - box[0]) if box is not None else 0.0
    thick = max(3, int(0.12 * size))
    body = pose.body
    for a, b in _SILHOUETTE:
        if body[a, 2] > 0 and body[b, 2] > 0:
            cv2.line(canvas, tuple(int(v) for v in body[a, :2]), tuple(int(v) for v in body[b, :2]), 1, thick)
    quad = torso(pose)
    if quad is not None:
        cv2.fillConvexPoly(canvas, quad.astype(np.int32), 1)
    head = body[[i for i in (0, 14, 15, 16, 17) if body[i, 2] > 0], :2]
    if len(head):
        spread = np.linalg.norm(head[:, None] - head[None], axis=2).max()  # ear to ear in a close-up
        radius = max(3, int(0.13 * size), int(1.3 * spread))
        cv2.circle(canvas, tuple(int(v) for v in head.mean(axis=0)), radius, 1, -1)
    return canvas.astype(bool)


def _drop_parts(people: list[Candidate]) -> list[Candidate]:
    """Drop a candidate whose box lies mostly (80 %) inside a larger one's: a part of a person found
    twice (the model fitted a small figure to a pair of raised arms, say)."""
    boxes = np.array([c.box for c in people]).reshape(-1, 4)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    keep = []
    for i in range(len(people)):
        low, high = np.maximum(boxes[i, :2], boxes[:, :2]), np.minimum(boxes[i, 2:], boxes[:, 2:])
        inside = np.prod(np.clip(high - low, 0, None), axis=1) / max(area[i], 1e-9)
        if not ((inside > 0.8) & (area > area[i])).any():
            keep.append(people[i])
    return keep


class PoseFinder:
    """Several people in one frame with a one-person model: mediapipe Pose finds the most salient
    person, their silhouette (thick limbs, torso and head drawn from the joints found) is painted over
    with the frame's median colour, and it looks again, until it finds nobody new or `max_people`.
    Pose ships its models in the wheel (model_complexity=1); each look costs one Pose pass."""

    def __init__(self, min_visibility: float = 0.3, max_people: int = 6):
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ start-up chatter
        import mediapipe as mp

        self.min_visibility, self.max_people = min_visibility, max_people
        self._model = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)

    def __call__(self, rgb: np.ndarray, limit: int | None = None) -> list[Candidate]:
        height, width = rgb.shape[:2]
        image, people = rgb.copy(), []
        fill = np.median(rgb.reshape(-1, 3), axis=0).astype(np.uint8)
        painted = np.zeros((height, width), dtype=bool)
        for _ in range(min(limit or self.max_people, self.max_people)):
            found = self._model.process(image).pose_landmarks
            if found is None:
                break
            landmarks = np.array([(p.x * width, p.y * height, p.z, p.visibility) for p in found.landmark])
            pose = Pose(body=map_body(landmarks, width, height, self.min_visibility))
            seen = landmarks[(landmarks[:, 3] >= self.min_visibility), :2]
            if len(seen) < 4 or not pose.has("body"):
                break
            low, high = seen.min(axis=0), seen.max(axis=0)
            tall = high[1] - low[1]
            # Landmarks stop at the eyes and wrists: leave room for the hair, the hands and the feet.
            box = np.concatenate([low - [0.06 * tall, 0.12 * tall], high + [0.06 * tall, 0.03 * tall]])
            box = np.clip(box, 0, [width, height, width, height])
            if people and iou_matrix(box, np.array([p.box for p in people])).max() > 0.6:
                break  # found someone already painted over: nobody new
            joints = pose.body[pose.body[:, 2] > 0, :2].astype(int)
            on_paint = people and painted[joints[:, 1].clip(0, height - 1), joints[:, 0].clip(0, width - 1)].mean()
            area = np.prod(box[2:] - box[:2])
            if on_paint and on_paint > 0.5 and area <= max(np.prod(p.box[2:] - p.box[:2]) for p in people):
                break  # most joints on paint, and no bigger: what is left of someone already found
            mask = silhouette(pose, width, height)
            people.append(Candidate(box=box, pose=pose, mask=mask))
            image[mask] = fill
            painted |= mask
        return _drop_parts(people)

    def close(self) -> None:
        self._model.close()


class PedestrianFinder:
    """OpenCV's built-in HOG + linear SVM people detector (Dalal and Triggs, CVPR 2005), for people too
    small for the pose model (a surveillance view). The frame is scaled to about 864 px high, so people
    from about 75 px tall are found; 8 pyramid levels, 1.1 apart."""

    def __init__(self, frame_height: int, threshold: float = 0.3):
        self.scale = float(np.clip(864.0 / frame_height, 0.5, 2.0))
        self.threshold = threshold
        self._hog = cv2.HOGDescriptor((64, 128), (16, 16), (8, 8), (8, 8), 9, 1, -1, 0, 0.2, True, 8)
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, rgb: np.ndarray) -> list[Candidate]:
        gray = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), None, fx=self.scale, fy=self.scale)
        rects, _ = self._hog.detectMultiScale(gray, hitThreshold=self.threshold, winStride=(8, 8), scale=1.1)
        # The detector's window holds a margin around the person: keep its middle.
        return [
            Candidate(box=np.array([x + 0.15 * w, y + 0.08 * h, x + 0.85 * w, y + 0.92 * h]) / self.scale)
            for x, y, w, h in np.asarray(rects).reshape(-1, 4)
        ]

    def close(self) -> None:
        pass


def person_record(
    choice: str | int,
    mode: str,
    first_frame: int,
    people_first_frame: int,
    people_seen: int,
    boxes: list[np.ndarray | None],
) -> dict:
    """What a PoseSequence keeps about the followed person (plain JSON data)."""
    return {
        "choice": choice,
        "mode": mode,
        "first_frame": int(first_frame),
        "people_first_frame": int(people_first_frame),
        "people_seen": int(people_seen),
        "boxes": [None if box is None else [round(float(v), 2) for v in box] for box in boxes],
    }
