import numpy as np

from convert.augment import augment, distant, jpeg, photometric, random_crop


def face(size=120):
    rng = np.random.default_rng(3)
    return rng.integers(0, 255, (size, size, 3), dtype=np.uint8)


def test_augment_gives_the_requested_size_and_is_seeded():
    a = augment(face(), 64, np.random.default_rng(5))
    b = augment(face(), 64, np.random.default_rng(5))
    c = augment(face(), 64, np.random.default_rng(6))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_random_crop_keeps_most_of_the_face():
    for seed in range(20):
        crop = random_crop(face(100), np.random.default_rng(seed))
        assert crop.shape[0] * crop.shape[1] >= 0.6 * 100 * 100


def test_distant_removes_fine_detail_like_a_far_face():
    img = face()
    far = distant(img, np.random.default_rng(0), smallest=16, largest=16)
    assert far.shape == img.shape
    # high-frequency energy (pixel-to-pixel differences) drops sharply
    assert np.abs(np.diff(far.astype(int), axis=1)).mean() < 0.5 * np.abs(np.diff(img.astype(int), axis=1)).mean()


def test_photometric_and_jpeg_change_pixels_but_not_shape():
    img = face()
    for fn in (photometric, jpeg):
        out = fn(img, np.random.default_rng(1))
        assert out.shape == img.shape and out.dtype == np.uint8
        assert not np.array_equal(out, img)
