"""Masks drawn below the nose of bare faces: placed by the landmarks, the eyes and nose left bare."""
import numpy as np
import pytest

from convert.dataset import read_rgb
from convert.synthetic_masks import LandmarkFinder, below_nose_twins, draw_mask_below_nose
from edge.inference.preprocess import crop_face, resize_square
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def hopper():
    image = read_rgb(shared_path("data", "images", "grace_hopper.jpg"))
    return resize_square(crop_face(image, (150, 120, 380, 420), 0.15), 224)


def test_the_landmarks_of_a_real_bare_face_are_in_order(hopper):
    points = LandmarkFinder().find(hopper)
    assert points is not None
    right_eye, left_eye, nose, right_mouth, left_mouth = points
    assert right_eye[0] < left_eye[0] and right_mouth[0] < left_mouth[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])


def test_the_mask_covers_below_the_nose_and_leaves_the_eyes_and_nose_bare(hopper):
    points = LandmarkFinder().find(hopper)
    nose_y = int(points[2][1])
    eyes_y = int(max(points[0][1], points[1][1]))
    changed = np.abs(draw_mask_below_nose(hopper, points, np.random.default_rng(0)).astype(int)
                     - hopper.astype(int)).sum(axis=2) > 30
    centre_x = int(points[2][0])
    band = slice(centre_x - 10, centre_x + 10)
    assert not changed[:eyes_y, band].any()  # forehead and eyes untouched (straps run outside)
    assert not changed[nose_y - 3:nose_y + 1, band].any()  # the nose tip stays visible
    chin = int(max(points[3][1], points[4][1]))
    assert changed[chin + 8:chin + 25, band].all()  # the mask lies over mouth and chin


def test_twins_are_seeded_and_a_face_without_landmarks_has_none(hopper):
    blank = np.full_like(hopper, 128)
    first, found = below_nose_twins([hopper, blank], np.random.default_rng(3))
    again, _ = below_nose_twins([hopper, blank], np.random.default_rng(3))
    assert found == 1 and first[1] is None
    assert np.array_equal(first[0], again[0])
