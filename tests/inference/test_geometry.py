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
    from edge.inference.geometry import match_by_iou

    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], dtype=float)
    detections = [(1, 1, 11, 11), (0, 0, 10, 10), (21, 21, 31, 31), (80, 80, 90, 90)]
    assigned, unmatched = match_by_iou(truth, detections, [0.5, 0.9, 0.8, 0.7], 0.3)
    assert assigned.tolist() == [1, 2, -1]
    assert unmatched == 2  # the weaker duplicate and the box on no face


def test_shrink_reaches_the_size_and_keeps_the_average():
    from edge.inference.geometry import shrink

    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    small = shrink(frame, 320, 180)
    assert small.shape == (180, 320, 3)
    assert abs(float(small.mean()) - float(frame.mean())) < 1.0
    assert shrink(frame[:100, :100], 64, 64).shape == (64, 64, 3)


# -- polygons: the ignore regions' geometry ----------------------------------------------------

from edge.inference.geometry import (  # noqa: E402
    box_centre, box_in_regions, point_in_polygon, polygon_area, polygon_problem)

SQUARE = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]
# A U open at the top: two arms (x 0..0.3 and 0.7..1) joined by a base (y 0.7..1).
U_SHAPE = [[0, 0], [0.3, 0], [0.3, 0.7], [0.7, 0.7], [0.7, 0], [1, 0], [1, 1], [0, 1]]


@pytest.mark.parametrize("point, inside", [
    ((0.4, 0.4), True), ((0.21, 0.59), True), ((0.1, 0.4), False), ((0.7, 0.4), False),
    ((0.4, 0.1), False), ((0.4, 0.9), False)])
def test_a_point_in_a_convex_polygon(point, inside):
    assert point_in_polygon(*point, SQUARE) is inside
    assert point_in_polygon(*point, SQUARE[::-1]) is inside  # either winding


@pytest.mark.parametrize("point, inside", [
    ((0.15, 0.3), True), ((0.85, 0.3), True), ((0.5, 0.85), True),  # both arms and the base
    ((0.5, 0.3), False), ((0.5, 0.69), False),  # the notch, just above the base
    ((1.2, 0.5), False), ((-0.1, 0.5), False)])
def test_a_point_in_a_concave_polygon(point, inside):
    assert point_in_polygon(*point, U_SHAPE) is inside


@pytest.mark.parametrize("point", [(0.4, 0.2), (0.6, 0.4), (0.2, 0.2), (0.6, 0.6), (0.2, 0.45)])
def test_a_point_on_the_outline_counts_as_inside(point):
    assert point_in_polygon(*point, SQUARE)


def test_the_notch_edges_of_a_concave_polygon_count_as_inside():
    assert point_in_polygon(0.5, 0.7, U_SHAPE) and point_in_polygon(0.3, 0.4, U_SHAPE)
    assert not point_in_polygon(0.5, 0.7 - 1e-6, U_SHAPE)


def test_a_face_is_in_a_region_when_its_box_centre_is():
    assert box_centre((100, 50, 200, 150)) == (150, 100)
    # 640 x 360 frame; the square covers x 128..384, y 72..216 in pixels
    mostly_outside = (370, 200, 390, 230)  # centre (380, 215): inside, though most of it is not
    mostly_inside = (130, 80, 400, 220)  # centre (265, 150): inside
    centre_out = (350, 60, 460, 120)  # overlaps the square, centre (405, 90) outside
    assert box_in_regions(mostly_outside, [SQUARE], 640, 360)
    assert box_in_regions(mostly_inside, [SQUARE], 640, 360)
    assert not box_in_regions(centre_out, [SQUARE], 640, 360)
    assert box_in_regions(centre_out, [SQUARE, [[0.6, 0.1], [0.7, 0.1], [0.6, 0.4]]], 640, 360)
    assert not box_in_regions(mostly_inside, [], 640, 360)


def test_the_same_fractions_hold_at_another_resolution():
    box = (130, 70, 150, 90)  # centre (140, 80): fractions (0.22, 0.22) of 640 x 360
    assert box_in_regions(box, [SQUARE], 640, 360)
    assert box_in_regions([2 * v for v in box], [SQUARE], 1280, 720)
    assert not box_in_regions(box, [SQUARE], 1280, 720)  # the same pixels: (0.11, 0.11)


def test_the_area_of_a_polygon():
    assert polygon_area(SQUARE) == pytest.approx(0.16)
    assert polygon_area(SQUARE[::-1]) == pytest.approx(0.16)
    assert polygon_area(U_SHAPE) == pytest.approx(1 - 0.4 * 0.7)


@pytest.mark.parametrize("points, words", [
    ([], "at least 3"),
    ([[0.1, 0.1], [0.5, 0.5]], "at least 3"),
    ([[0.1, 0.1], [0.3, 0.3], [0.5, 0.5]], "no area"),  # collinear
    ([[0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1]], "no area"),  # one point, four times
    ([[0.1, 0.1], [0.5, 0.1], [0.1, 0.1]], "no area"),  # there and back
    ([[0.1, 0.1], [0.5], [0.5, 0.5]], "point 1"),
    ([[0.1, 0.1], [0.5, 0.1, 0.2], [0.5, 0.5]], "point 1"),
    ([[0.1, 0.1], [0.5, 0.1], [0.5, float("nan")]], "point 2"),
    ([[0.1, 0.1], [0.5, 0.1], [float("inf"), 0.5]], "point 2"),
    ([[0.1, 0.1], [0.5, True], [0.5, 0.5]], "point 1"),
])
def test_degenerate_polygons_are_refused(points, words):
    problem = polygon_problem(points)
    assert problem and words in problem, problem


def test_a_real_polygon_has_no_problem():
    assert polygon_problem(SQUARE) is None and polygon_problem(U_SHAPE) is None
    assert polygon_problem([[0, 0], [1, 0], [0, 1]]) is None
