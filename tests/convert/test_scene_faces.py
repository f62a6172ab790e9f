"""Scene faces for training, cut by their annotated box or by the box the Pi's detector draws."""
import json
import os

import cv2
import numpy as np
import pytest

from convert.dataset import list_samples
from convert.scene_faces import export_scene_faces, iter_detector_framed_faces
from edge.errors import DataError
from edge.inference.detectors import DetectorSettings, create_detector
from edge.inference.preprocess import crop_face
from tests.conftest import shared_path

PHOTO = shared_path("data", "images", "four_faces.jpg")


@pytest.fixture(scope="module")
def detector():
    return create_detector(DetectorSettings())


@pytest.fixture(scope="module")
def found(detector):
    faces = [f for f in detector.detect(cv2.imread(str(PHOTO))) if f.size >= 24]
    assert len(faces) >= 3
    return faces


def _taller(box, by=0.3):
    """An annotation-style box: the detector's box grown taller, as annotators draw faces."""
    x1, y1, x2, y2 = box
    grow = (y2 - y1) * by / 2.0
    return [float(x1), float(y1 - grow), float(x2), float(y2 + grow)]


def _scene(tmp_path, faces):
    os.symlink(PHOTO, tmp_path / "four.jpg")
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps([{"image": "four.jpg", "faces": faces}]))
    return str(path)


def test_each_found_face_is_cut_by_the_detector_box_not_the_annotation(tmp_path, detector, found):
    faces = [{"box": _taller(found[0].box), "label": "with_mask"},
             {"box": [0, 0, 30, 30], "label": "without_mask"},  # nothing there to find
             {"box": _taller(found[1].box), "label": "mask_weared_incorrect"}]
    cut = list(iter_detector_framed_faces(detector, _scene(tmp_path, faces)))
    assert [(index, label) for _, index, label, _ in cut] == [(0, "with_mask"),
                                                             (2, "mask_weared_incorrect")]
    rgb = cv2.imread(str(PHOTO))[..., ::-1]
    for (_, index, _, crop), face in zip(cut, (found[0], found[1])):
        assert np.array_equal(crop, crop_face(rgb, face.box))
        assert crop.shape != crop_face(rgb, faces[index]["box"]).shape


def test_held_out_photos_and_small_faces_are_not_cut(tmp_path, detector, found):
    path = _scene(tmp_path, [{"box": _taller(f.box), "label": "with_mask"} for f in found])
    assert list(iter_detector_framed_faces(detector, path, skip_photos={"four.jpg"})) == []
    biggest = max(f.size for f in found)
    assert list(iter_detector_framed_faces(detector, path, min_size=biggest + 1)) == []


def test_both_framings_of_a_face_share_its_photo_and_so_its_side_of_the_split(tmp_path, found):
    faces = [{"box": _taller(f.box), "label": "with_mask"} for f in found[:2]]
    out = tmp_path / "out"
    counts = export_scene_faces([_scene(tmp_path, faces)], str(out),
                                framings=("annotation", "detector"))
    names = sorted(os.listdir(out / "with_mask"))
    assert counts == {"with_mask": 4}
    assert [n.rsplit("-", 1)[1] for n in names] == ["four__0.png", "four__0d.png",
                                                    "four__1.png", "four__1d.png"]
    assert len({s.group for s in list_samples([str(out)])}) == 1


def test_an_unknown_framing_is_named(tmp_path):
    with pytest.raises(DataError, match="framing.*annotation, detector"):
        export_scene_faces([_scene(tmp_path, [])], str(tmp_path / "out"), framings=("tight",))


def test_detector_framed_faces_are_told_apart_by_name_and_counted_in_a_runs_training_side(tmp_path):
    from convert.quantize import detector_framed_count
    from convert.scene_faces import is_detector_framed

    assert is_detector_framed("runs/x/with_mask/ilc2021-photo__3d.png")
    for name in ("ilc2021-photo__3.png", "with_mask_0001.jpg", "ilc2021-d__3.png", "photo__d.png"):
        assert not is_detector_framed(name)
    split = {"train": [["s/with_mask/a-p__0.png", 0], ["s/with_mask/a-p__0d.png", 0],
                       ["s/without_mask/a-q__1d.png", 1]],
             "val": [["s/with_mask/a-r__0d.png", 0]]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    assert detector_framed_count(str(tmp_path)) == 2
