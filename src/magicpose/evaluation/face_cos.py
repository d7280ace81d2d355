"""Face-Cos (MagicPose, Sec. 5.3): cosine similarity of AdaFace embeddings of the aligned faces
of a generated frame and its ground truth.

Faces are found with mediapipe's FaceMesh (its models ship inside the wheel), reduced to the five
points of the ArcFace alignment (eye centres, nose tip, mouth corners) and warped by the
least-squares similarity transform onto the 112x112 ArcFace template, the input AdaFace was
trained on. A pair is scored only when both frames show a face; the report counts the pairs scored.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from magicpose.evaluation.adaface import FACE_SIZE, IRBackbone
from magicpose.poses.native_logs import quietly

# insightface's ArcFace 5-point template for 112x112 crops
# (left eye, right eye, nose, mouth corners, in image x order).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
# FaceMesh indices giving the same five points: eye corners (averaged), nose tip, mouth corners.
FACEMESH_EYE_IMAGE_LEFT = (33, 133)
FACEMESH_EYE_IMAGE_RIGHT = (362, 263)
FACEMESH_NOSE_TIP = 1
FACEMESH_MOUTH_CORNERS = (61, 291)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 matrix of the least-squares similarity mapping `source` points onto `target` (Umeyama 1991, Eq. 40-42)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    reflection = np.ones(2)
    if np.linalg.det(covariance) < 0:
        reflection[-1] = -1
    rotation = u @ np.diag(reflection) @ vt
    scale = (singular @ reflection) / source_centred.var(axis=0).sum()
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def five_points(landmarks_xy: np.ndarray) -> np.ndarray:
    """(468, 2) FaceMesh landmarks in pixels -> (5, 2) ArcFace points in template order."""
    return np.stack(
        [
            landmarks_xy[list(FACEMESH_EYE_IMAGE_LEFT)].mean(axis=0),
            landmarks_xy[list(FACEMESH_EYE_IMAGE_RIGHT)].mean(axis=0),
            landmarks_xy[FACEMESH_NOSE_TIP],
            landmarks_xy[FACEMESH_MOUTH_CORNERS[0]],
            landmarks_xy[FACEMESH_MOUTH_CORNERS[1]],
        ]
    )


def align_face(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Warp an RGB frame so that its five face points land on the ArcFace template; (112, 112, 3) uint8."""
    matrix = similarity_transform(points, ARCFACE_TEMPLATE)
    return cv2.warpAffine(frame, matrix, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)


def adaface_input(faces: list[np.ndarray]) -> torch.Tensor:
    """Aligned RGB uint8 faces -> (B, 3, 112, 112) BGR in [-1, 1], as AdaFace's ``to_input``."""
    bgr = np.stack(faces)[..., ::-1].astype(np.float32)
    return torch.from_numpy(((bgr / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy())


class FaceAligner:
    """mediapipe FaceMesh on single images; ``__call__`` returns the aligned face or None."""

    @quietly
    def __init__(self, min_detection_confidence: float = 0.5):
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=1,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
        )

    @quietly
    def landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        result = self._mesh.process(np.ascontiguousarray(frame))
        if not result.multi_face_landmarks:
            return None
        height, width = frame.shape[:2]
        points = result.multi_face_landmarks[0].landmark
        return np.array([[p.x * width, p.y * height] for p in points], dtype=np.float64)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        landmarks = self.landmarks(frame)
        return None if landmarks is None else align_face(frame, five_points(landmarks))

    @quietly
    def close(self) -> None:
        self._mesh.close()


def face_cosine_similarities(
    model: IRBackbone, aligner, generated: list[np.ndarray], reference: list[np.ndarray]
) -> list[float | None]:
    """Per frame pair: cosine similarity of the two face embeddings, or None where a face is missing."""
    pairs = [(aligner(g), aligner(r)) for g, r in zip(generated, reference)]
    scored = [i for i, (g, r) in enumerate(pairs) if g is not None and r is not None]
    similarities: list[float | None] = [None] * len(pairs)
    if not scored:
        return similarities
    parameter = next(model.parameters())
    faces_g = adaface_input([pairs[i][0] for i in scored]).to(parameter.device, parameter.dtype)
    faces_r = adaface_input([pairs[i][1] for i in scored]).to(parameter.device, parameter.dtype)
    cosine = torch.nn.functional.cosine_similarity(model(faces_g), model(faces_r), dim=1).float().cpu().numpy()
    for i, value in zip(scored, cosine):
        similarities[i] = float(value)
    return similarities
