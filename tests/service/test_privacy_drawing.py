"""Faces are pixelated where they are and nowhere else; JPEG comments carry the snapshot id."""
import cv2
import numpy as np

from edge.inference.annotate import (blur_regions, crop, draw_view, encode_jpeg, jpeg_comment,
                                     shrink)
from edge.inference.pipeline import FaceResult


def noisy(height=240, width=320, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def detail(region):
    """Mean absolute difference between neighbouring pixels: high for detail, ~0 when flat."""
    region = region.astype(int)
    return float(np.abs(np.diff(region, axis=1)).mean())


def test_a_face_is_pixelated_and_the_rest_of_the_frame_untouched():
    frame = noisy()
    out = blur_regions(frame.copy(), [(100, 50, 180, 150)], margin=0)
    assert detail(out[50:150, 100:180]) < detail(frame[50:150, 100:180]) / 5
    untouched = np.ones(frame.shape[:2], bool)
    untouched[50:150, 100:180] = False
    assert np.array_equal(out[untouched], frame[untouched])


def test_boxes_outside_or_across_the_edge_never_fail():
    frame = noisy()
    blur_regions(frame, [(-50, -50, 10, 10), (300, 200, 900, 900), (500, 500, 600, 600),
                         (10, 10, 10.4, 10.4)])
    assert crop(frame, (500, 500, 600, 600), 0.5).shape == frame.shape  # nothing inside: the frame


def test_the_live_view_blurs_unless_privacy_is_off_and_draws_the_boxes():
    frame = noisy()
    faces = [FaceResult((100, 50, 180, 150), "no_mask", 0.97, 0.9)]
    blurred = draw_view(frame, faces, blur=True)
    clear = draw_view(frame, faces, blur=False)
    inner = (slice(70, 140), slice(110, 170))  # inside the box, below the caption
    assert detail(blurred[inner]) < detail(clear[inner]) / 5
    assert np.array_equal(clear[inner], frame[inner])
    assert tuple(blurred[100, 100]) == (40, 40, 220)  # the no_mask box's red edge
    assert np.array_equal(draw_view(frame, [], blur=True), frame)


def test_a_jpeg_carries_its_comment_and_still_decodes():
    data = encode_jpeg(shrink(noisy(400, 1000), 500), 80, "maskdet snapshot abc")
    assert jpeg_comment(data) == "maskdet snapshot abc"
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (200, 500, 3)
    assert jpeg_comment(encode_jpeg(noisy(), 80)) is None


def test_a_face_the_model_sees_a_mask_below_the_nose_on_is_captioned_so():
    """The caption an installer reads in annotated output: the kind of no mask when the model
    tells it (its share at least one half), the plain label otherwise."""
    from edge.inference.annotate import caption
    from edge.inference.pipeline import FaceResult

    box = (10, 10, 60, 70)
    assert caption(FaceResult(box, "no_mask", 0.88, 0.9, below_nose=0.7)) == "Mask below nose 88.0%"
    assert caption(FaceResult(box, "no_mask", 0.88, 0.9, below_nose=0.3)) == "No mask 88.0%"
    assert caption(FaceResult(box, "no_mask", 0.88, 0.9)) == "No mask 88.0%"
    assert caption(FaceResult(box, "mask", 0.9, 0.9, below_nose=0.9)) == "Mask 90.0%"
    # a snapshot's face: the decision's kind, drawn on the frame
    from edge.service.snapshots import _Box

    assert caption(_Box(box, "no_mask", 0.88, "mask_below_nose")) == "Mask below nose 88.0%"


def test_a_faces_json_names_its_kind_of_no_mask_only_when_called_no_mask():
    """`maskdet detect` and the live view's JSON: the kind of a no_mask face from a model that
    tells them apart; nothing for a masked face (its small no-mask share says nothing) or from
    a two-output model."""
    from edge.inference.pipeline import FaceResult

    box = (10, 10, 60, 70)
    assert FaceResult(box, "no_mask", 0.88, 0.9, below_nose=0.7).as_dict()["kind"] == \
        "mask_below_nose"
    assert FaceResult(box, "no_mask", 0.88, 0.9, below_nose=0.2).as_dict()["kind"] == "no_mask"
    assert "kind" not in FaceResult(box, "mask", 0.9, 0.9, below_nose=0.9).as_dict()
    assert "kind" not in FaceResult(box, "no_mask", 0.88, 0.9).as_dict()
