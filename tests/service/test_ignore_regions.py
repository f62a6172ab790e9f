"""A camera's ignore regions: which faces they set apart, how the live view, the snapshot and
`maskdet detect --annotate --config` draw them (the regions tinted and outlined, their faces
grey), and `detect --json` marking those faces `"ignored": true`."""
import http.client
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge.config.schema import HttpConfig, PrivacyConfig
from edge.inference.annotate import (COLOURS_BGR, IGNORED_BGR, REGION_BGR, draw_ignore_regions,
                                     draw_view, region_pixels)
from edge.inference.pipeline import FaceResult
from edge.service.http_view import HttpView
from edge.service.ignore_regions import IgnoreRegions
from tests.conftest import run_cli, shared_path
from tests.config.helpers import write_config

SHAPE = (360, 640, 3)
POSTER = [[0.6, 0.1], [0.9, 0.1], [0.9, 0.7], [0.6, 0.7]]  # x 384..576, y 36..252 at 640 x 360
L_SHAPE = [[0.0, 0.5], [0.3, 0.5], [0.3, 0.8], [0.5, 0.8], [0.5, 1.0], [0.0, 1.0]]
FLAT_BGR = (30, 90, 150)


def face(box, label="no_mask"):
    return FaceResult(box, label, 0.97 if label != "unknown" else None, 0.9)


ON_POSTER = face((440, 100, 520, 190))  # centre (480, 145)
BY_THE_DOOR = face((100, 60, 180, 160))  # centre (140, 110)
HALF_ON = face((330, 100, 430, 190))  # centre (380, 145): overlaps the poster, centre outside


def flat(shape=SHAPE):
    return np.full(shape, FLAT_BGR, np.uint8)


def test_faces_whose_centre_is_in_a_region_are_set_apart_and_counted():
    regions = IgnoreRegions("door", [POSTER])
    kept, ignored = regions.split(SHAPE, [BY_THE_DOOR, ON_POSTER, HALF_ON])
    assert kept == [BY_THE_DOOR, HALF_ON] and ignored == [ON_POSTER]
    regions.split(SHAPE, [ON_POSTER, ON_POSTER])
    assert regions.ignored == 3


def test_any_object_with_a_box_will_do_and_the_fractions_hold_at_any_size():
    regions = IgnoreRegions("door", [POSTER, L_SHAPE])
    small = SimpleNamespace(box=(20, 200, 60, 240))  # centre (40, 220) in the L's foot
    notch = SimpleNamespace(box=(230, 230, 250, 250))  # centre (240, 240): the L's notch
    assert regions.split(SHAPE, [small, notch]) == ([notch], [small])
    big = SimpleNamespace(box=tuple(2 * v for v in ON_POSTER.box))
    assert regions.covers(big.box, (720, 1280, 3)) and not regions.covers(big.box, SHAPE)


def test_no_regions_keep_every_face():
    regions = IgnoreRegions("door")
    assert not regions and regions.split(SHAPE, [ON_POSTER]) == ([ON_POSTER], [])
    assert regions.ignored == 0


def test_a_degenerate_region_is_refused_naming_the_camera_and_the_region():
    with pytest.raises(ValueError, match=r"camera 'door': ignore_regions\[1\] has no area"):
        IgnoreRegions("door", [POSTER, [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]])


def outline_mask(polygon, shape=SHAPE, thickness=1):
    mask = np.zeros(shape[:2], np.uint8)
    cv2.polylines(mask, [region_pixels(polygon, shape)], True, 1, thickness)
    return mask.astype(bool)


def test_a_region_is_outlined_and_tinted_and_the_rest_left_alone():
    frame = flat()
    out = draw_ignore_regions(frame, [POSTER])
    assert np.array_equal(frame, flat())  # a copy: the frame offered is never drawn on
    outline = outline_mask(POSTER)
    outline[:70, 380:480] = False  # under the label `ignored` at the top corner
    assert outline.sum() > 500
    assert (out[outline] == REGION_BGR).all()  # every other pixel of the outline
    inside = out[200:240, 400:560]  # inside, below the label
    assert (inside.astype(int) - FLAT_BGR).any(axis=-1).all()  # tinted ...
    assert (np.abs(inside.astype(int) - FLAT_BGR) < 100).all()  # ... not painted over
    assert np.array_equal(out[:, :300], frame[:, :300])  # far from it: untouched
    assert np.array_equal(draw_ignore_regions(frame, []), frame)


def test_a_region_over_the_whole_frame_still_shows_its_outline():
    whole = [[0, 0], [1, 0], [1, 1], [0, 1]]
    out = draw_ignore_regions(flat(), [whole])
    assert tuple(out[180, 0]) == REGION_BGR and tuple(out[180, 639]) == REGION_BGR
    assert tuple(out[359, 320]) == REGION_BGR


def test_the_view_draws_ignored_faces_grey_and_people_in_their_colour():
    out = draw_view(flat(), [BY_THE_DOOR], blur=False, ignored=[ON_POSTER], regions=[POSTER])
    assert tuple(out[150, 440]) == IGNORED_BGR  # the ignored face's left edge
    assert tuple(out[150, 100]) == COLOURS_BGR["no_mask"]  # the person's left edge
    assert tuple(out[252, 500]) == REGION_BGR  # the poster's bottom edge
    plain = draw_view(flat(), [BY_THE_DOOR, ON_POSTER], blur=False)
    assert tuple(plain[150, 440]) == COLOURS_BGR["no_mask"]  # without regions: a person


def test_the_view_blurs_ignored_faces_too():
    frame = np.random.default_rng(3).integers(0, 256, SHAPE, dtype=np.uint8)
    out = draw_view(frame, [], blur=True, ignored=[ON_POSTER])
    inner = (slice(130, 180), slice(450, 510))
    detail = lambda a: float(np.abs(np.diff(a.astype(int), axis=1)).mean())  # noqa: E731
    assert detail(out[inner]) < detail(frame[inner]) / 5


@pytest.fixture
def view():
    v = HttpView(HttpConfig(enabled=True, listen="127.0.0.1:0"), PrivacyConfig(), None)
    v.set_cameras(["door"])
    assert v.start(SimpleNamespace())
    yield v
    v.stop()


def snapshot(view):
    conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
    conn.request("GET", "/door/snapshot.jpg")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200, body
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def test_the_live_snapshot_draws_the_cameras_regions_and_its_ignored_faces(view):
    view.offer("door", 1, flat(), [BY_THE_DOOR], [ON_POSTER], [POSTER])
    with_regions = snapshot(view).astype(int)
    view.offer("door", 2, flat(), [BY_THE_DOOR, ON_POSTER])
    without = snapshot(view).astype(int)
    outline = outline_mask(POSTER, thickness=2) & ~outline_mask([[0, 0], [1, 0], [1, 0.3]])
    outline[:, :400] = False  # leave out the faces' boxes and captions
    outline[:260, 430:530] = False
    assert outline.sum() > 300
    # JPEG blurs a 2-pixel line: the outline is far from the frame's colour, on average
    assert np.abs(with_regions[outline] - FLAT_BGR).mean() > 40
    assert np.abs(without[outline] - FLAT_BGR).mean() < 8
    edge = with_regions[120:180, 439:442].mean(axis=(0, 1))  # the ignored face's left edge
    assert np.abs(edge - IGNORED_BGR).max() < 40 and abs(edge[2] - edge[0]) < 25  # grey
    red = without[120:180, 439:442].mean(axis=(0, 1))
    assert red[2] - red[0] > 60  # the same face as a person: its no_mask red


# -- `maskdet detect --config FILE --camera NAME` ----------------------------------------------

RIGHT_HALF = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]


def detect(*args):
    proc = run_cli("-m", "edge.cli", "detect", *args, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def four_faces(tmp_path):
    """The shared photo of four faces as a PNG (annotations written losslessly)."""
    path = tmp_path / "in" / "four_faces.png"
    path.parent.mkdir()
    assert cv2.imwrite(str(path), cv2.imread(shared_path("data", "images", "four_faces.jpg")))
    return path


def test_detect_marks_and_draws_the_faces_in_a_cameras_regions(tmp_path, four_faces):
    config = write_config(tmp_path, {"cameras": [
        {"name": "door", "source": {"type": "opencv", "url": "0"}, "ignore_regions": [RIGHT_HALF]},
        {"name": "side", "source": {"type": "opencv", "url": "1"}}]})
    common = ("--json", "--detector-model", shared_path("models", "face_detection_yunet_2023mar.onnx"))
    plain = json.loads(detect(*common, "--annotate", str(tmp_path / "plain"), str(four_faces)).stdout)
    marked = json.loads(detect(*common, "--annotate", str(tmp_path / "marked"), "--config",
                               str(config), "--camera", "door", str(four_faces)).stdout)
    side = json.loads(detect(*common, "--config", str(config), "--camera", "side",
                             str(four_faces)).stdout)
    assert len(plain["faces"]) >= 3 and side["faces"] == plain["faces"]
    assert not any("ignored" in f for f in plain["faces"])
    right = [(f["box"][0] + f["box"][2]) / 2 >= 0.5 * plain["width"] for f in plain["faces"]]
    assert any(right) and not all(right)
    assert [f.get("ignored", False) for f in marked["faces"]] == right
    assert [{k: v for k, v in f.items() if k != "ignored"} for f in marked["faces"]] == plain["faces"]

    drawn = cv2.imread(str(tmp_path / "marked" / "four_faces.png"))
    before = cv2.imread(str(tmp_path / "plain" / "four_faces.png"))
    for f, ignored in zip(plain["faces"], right):
        x1, y1, x2, y2 = f["box"]
        edge = (y1 + y2) // 2, x1  # the middle of the box's left edge
        assert tuple(before[edge]) == COLOURS_BGR[f["label"]]
        assert tuple(drawn[edge]) == (IGNORED_BGR if ignored else COLOURS_BGR[f["label"]])
    x = round(0.5 * plain["width"])
    column = drawn[:, x]  # the region's left edge: outlined from top to bottom
    assert (column == REGION_BGR).all(axis=-1).mean() > 0.6
    assert not (before[:, x] == REGION_BGR).all(axis=-1).any()


def test_detect_refuses_an_unknown_camera_and_camera_without_config(tmp_path, four_faces):
    config = write_config(tmp_path)
    proc = run_cli("-m", "edge.cli", "detect", "--config", str(config), "--camera", "garage",
                   str(four_faces), timeout=120)
    assert proc.returncode == 78 and "'garage'" in proc.stderr and "door" in proc.stderr, proc.stderr
    proc = run_cli("-m", "edge.cli", "detect", "--camera", "door", str(four_faces), timeout=120)
    assert proc.returncode == 1 and "--config" in proc.stderr and "Traceback" not in proc.stderr
