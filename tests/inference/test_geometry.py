import numpy as np
import pytest

from edge.inference.geometry import Face, iou, letterbox, nms, to_faces, weighted_nms


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    assert iou([0, 0, 10, 10], [[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]]).tolist() == \
        pytest.approx([1.0, 0.0, 1 / 3])


def test_nms_keeps_the_best_of_each_cluster():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]
    assert nms(boxes, [0.9, 0.95, 0.5]) == [1, 2]


def test_weighted_nms_averages_a_cluster_by_score():
    boxes, scores = weighted_nms([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], [0.75, 0.25, 0.6])
    assert boxes[0].tolist() == pytest.approx([0.5, 0, 10.5, 10])
    assert scores.tolist() == [0.75, 0.6]


def test_letterbox_maps_boxes_back_to_the_frame():
    frame = np.zeros((100, 200, 3), np.uint8)
    square, box_map = letterbox(frame, 128)
    assert square.shape == (128, 128, 3)
    # the frame occupies rows 32..96 of the square: its centre maps back to (100, 50)
    centre = box_map.to_frame([[0.5, 0.5, 0.5, 0.5]])[0]
    assert centre.tolist() == pytest.approx([100, 50, 100, 50])
    corner = box_map.to_frame([[0, 32 / 128, 1, 96 / 128]])[0]
    assert corner.tolist() == pytest.approx([0, 0, 200, 100])


def test_to_faces_clips_and_drops_degenerate_boxes():
    faces = to_faces([[-5, -5, 20, 20], [30, 30, 30.5, 40]], [0.9, 0.8], 100, 100)
    assert faces == [Face((0.0, 0.0, 20.0, 20.0), 0.9)]
    assert faces[0].size == 20


def test_matching_assigns_each_truth_box_its_best_free_detection():
    from edge.bench.detector_recall import match

    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], dtype=float)
    detections = [(1, 1, 11, 11), (0, 0, 10, 10), (21, 21, 31, 31), (80, 80, 90, 90)]
    assigned, unmatched = match(truth, detections, [0.5, 0.9, 0.8, 0.7])
    assert assigned.tolist() == [1, 2, -1]
    assert unmatched == 2  # the weaker duplicate and the box on no face


def test_shrink_reaches_the_size_and_keeps_the_average():
    from edge.inference.geometry import shrink

    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    small = shrink(frame, 320, 180)
    assert small.shape == (180, 320, 3)
    assert abs(float(small.mean()) - float(frame.mean())) < 1.0
    assert shrink(frame[:100, :100], 64, 64).shape == (64, 64, 3)
