"""Faces without labels for distillation: what nobody annotated, never the held-out photos."""
import json
import os

import cv2

from convert.unlabelled_faces import export_unlabelled_faces, unannotated_scene_faces
from edge.inference.detectors import DetectorSettings, create_detector
from tests.conftest import shared_path


def _scene(tmp_path, annotated_boxes):
    os.symlink(shared_path("data", "images", "four_faces.jpg"), tmp_path / "four.jpg")
    faces = [{"box": box, "label": "with_mask"} for box in annotated_boxes]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps([{"image": "four.jpg", "faces": faces}]))
    return str(path)


def test_only_faces_nobody_annotated_are_taken(tmp_path):
    detector = create_detector(DetectorSettings())
    frame = cv2.imread(str(shared_path("data", "images", "four_faces.jpg")))
    found = [f for f in detector.detect(frame) if f.size >= 24]
    assert len(found) >= 3
    annotated = [list(found[0].box)]
    path = _scene(tmp_path, annotated)
    taken = list(unannotated_scene_faces(detector, path))
    assert len(taken) == len(found) - 1
    assert all(crop.ndim == 3 and crop.shape[0] >= 24 for _, crop in taken)
    assert list(unannotated_scene_faces(detector, path, skip_photos={"four.jpg"})) == []


def test_export_writes_the_faces_into_the_unlabelled_folder(tmp_path):
    path = _scene(tmp_path, [])
    counts = export_unlabelled_faces(str(tmp_path / "out"), [], [path])
    written = os.listdir(tmp_path / "out" / "unlabelled")
    assert counts == {"video": 0, "scene": len(written)} and len(written) >= 3
