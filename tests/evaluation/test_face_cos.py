import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from magicpose.evaluation import adaface, face_cos
from tests.evaluation.evaluation_helpers import noisy, randomize


def test_similarity_transform_matches_scikit_image():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 300, (5, 2))
    target = face_cos.ARCFACE_TEMPLATE
    reference = (
        SimilarityTransform.from_estimate(source, target).params[:2]
        if hasattr(SimilarityTransform, "from_estimate")
        else None
    )
    if reference is None:
        transform = SimilarityTransform()
        transform.estimate(source, target)
        reference = transform.params[:2]
    np.testing.assert_allclose(face_cos.similarity_transform(source, target), reference, atol=1e-9)


def test_similarity_transform_recovers_an_exact_similarity():
    angle, scale, shift = 0.3, 2.5, np.array([10.0, -4.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = np.random.default_rng(1).uniform(0, 50, (5, 2))
    matrix = face_cos.similarity_transform(source, source @ rotation.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rotation, shift[:, None]]), atol=1e-9)


@pytest.fixture(scope="module")
def aligner():
    aligner = face_cos.FaceAligner()
    yield aligner
    aligner.close()


def test_alignment_puts_the_face_on_the_arcface_template(astronaut, aligner):
    landmarks = aligner.landmarks(astronaut)
    assert landmarks is not None and landmarks.shape == (468, 2)
    points = face_cos.five_points(landmarks)
    matrix = face_cos.similarity_transform(points, face_cos.ARCFACE_TEMPLATE)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    # A least-squares fit of five points: the eyes land within a few pixels of the template; nose and
    # mouth differ more, as FaceMesh's points and a smiling face differ from RetinaFace's average face.
    assert np.abs(mapped - face_cos.ARCFACE_TEMPLATE)[:2].max() < 3
    assert np.abs(mapped - face_cos.ARCFACE_TEMPLATE).max() < 8
    face = aligner(astronaut)
    assert face.shape == (112, 112, 3) and face.dtype == np.uint8
    # The aligned crop shows a face again, with the eyes where the template has them.
    again = aligner.landmarks(np.ascontiguousarray(face))
    assert again is not None  # measured: found, eyes 2.6 px from the template
    assert np.abs(face_cos.five_points(again)[:2] - face_cos.ARCFACE_TEMPLATE[:2]).max() < 4


def test_face_cos_is_one_for_identical_faces_and_drops_with_noise(astronaut, aligner):
    model = randomize(adaface.IRBackbone((1, 1, 1, 1)))
    blank = np.zeros_like(astronaut)
    frames = [astronaut] + [noisy([astronaut], sigma, seed=2)[0] for sigma in (3, 10, 25)] + [blank]
    similarities = face_cos.face_cosine_similarities(model, aligner, frames, [astronaut] * len(frames))
    assert similarities[0] == pytest.approx(1.0, abs=1e-5)
    assert similarities[-1] is None  # no face in the generated frame: not scored
    scored = similarities[:4]
    assert all(s is not None for s in scored) and scored == sorted(scored, reverse=True) and scored[-1] < 0.999


def test_adaface_input_is_bgr_in_minus_one_to_one():
    face = np.zeros((112, 112, 3), np.uint8)
    face[..., 0] = 255  # red
    tensor = face_cos.adaface_input([face])
    assert tensor.shape == (1, 3, 112, 112)
    assert tensor[0, 2].min() == 1.0 and tensor[0, 0].max() == -1.0  # red is the last (BGR) channel
