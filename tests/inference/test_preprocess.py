import numpy as np
import pytest

from edge.errors import DataError
from edge.inference.preprocess import crop_face, normalize, resize_square, square_box


def test_square_box_is_centred_square_widened_by_margin():
    x1, y1, x2, y2 = square_box([10, 20, 30, 60], margin=0.25)
    assert x2 - x1 == pytest.approx(60.0)  # longer side 40 * 1.5
    assert y2 - y1 == pytest.approx(60.0)
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == (20.0, 40.0)


def test_crop_inside_image_takes_the_pixels():
    image = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    crop = crop_face(image, [40, 40, 60, 60], margin=0.0)
    assert crop.shape == (20, 20, 3)
    assert np.array_equal(crop, image[40:60, 40:60])


def test_crop_at_the_border_keeps_the_face_centred_by_repeating_edges():
    image = np.zeros((50, 50, 3), np.uint8)
    image[:, :5] = 200
    crop = crop_face(image, [0, 10, 20, 30], margin=0.25)
    assert crop.shape == (30, 30, 3)
    assert (crop[:, :5] == 200).all()  # left padding repeats the border column


def test_crop_outside_the_image_is_an_error():
    with pytest.raises(DataError, match="outside"):
        crop_face(np.zeros((10, 10, 3), np.uint8), [50, 50, 60, 60], margin=0.0)


def test_resize_and_normalize_range():
    image = np.full((300, 200, 3), 255, np.uint8)
    small = resize_square(image, 64)
    assert small.shape == (64, 64, 3)
    assert normalize(small).max() == pytest.approx(1.0)
    assert normalize(np.zeros((2, 2, 3), np.uint8)).min() == pytest.approx(-1.0)
