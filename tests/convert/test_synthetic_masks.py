"""Masks drawn on bare faces, placed by the landmarks: below the nose (the eyes and nose left bare)
and over it (the nose covered, the eyes left bare)."""
import numpy as np
import pytest

from convert.dataset import read_rgb
from convert.synthetic_masks import BELOW_NOSE, OVER_NOSE, LandmarkFinder, draw_mask, mask_twins
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
    changed = np.abs(draw_mask(hopper, points, np.random.default_rng(0), BELOW_NOSE).astype(int)
                     - hopper.astype(int)).sum(axis=2) > 30
    centre_x = int(points[2][0])
    band = slice(centre_x - 10, centre_x + 10)
    assert not changed[:eyes_y, band].any()  # forehead and eyes untouched (straps run outside)
    assert not changed[nose_y - 3:nose_y + 1, band].any()  # the nose tip stays visible
    chin = int(max(points[3][1], points[4][1]))
    assert changed[chin + 8:chin + 25, band].all()  # the mask lies over mouth and chin


@pytest.mark.parametrize("seed", range(5))
def test_a_mask_over_the_nose_covers_nose_mouth_and_chin_and_leaves_the_eyes_bare(hopper, seed):
    points = LandmarkFinder().find(hopper)
    changed = np.abs(draw_mask(hopper, points, np.random.default_rng(seed), OVER_NOSE).astype(int)
                     - hopper.astype(int)).sum(axis=2) > 30
    centre_x = int(points[2][0])
    band = slice(centre_x - 10, centre_x + 10)
    eyes_y = int(max(points[0][1], points[1][1]))
    nose_y, chin = int(points[2][1]), int(max(points[3][1], points[4][1]))
    assert not changed[:eyes_y - 2, band].any()  # forehead and eyes untouched
    assert changed[nose_y - 3:nose_y + 1, band].all()  # the nose tip is covered
    assert changed[chin:chin + 15, band].all()  # and the mouth and chin


def test_twins_are_seeded_in_pairs_and_a_face_without_landmarks_has_none(hopper):
    blank = np.full_like(hopper, 128)
    first, found = mask_twins([hopper, blank], np.random.default_rng(3))
    again, _ = mask_twins([hopper, blank], np.random.default_rng(3))
    assert found == 1 and first[1] is None
    assert set(first[0]) == {BELOW_NOSE, OVER_NOSE}
    assert all(np.array_equal(first[0][k], again[0][k]) for k in first[0])
    assert not np.array_equal(first[0][BELOW_NOSE], first[0][OVER_NOSE])
