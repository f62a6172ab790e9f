"""`maskdet detect / classify / models`: output contract and clear errors (no tracebacks)."""
import json
import os
import shutil

import cv2

from tests.conftest import REPO_ROOT, run_cli, shared_path

META = os.path.join(REPO_ROOT, "models", "mask_classifier.json")


def maskdet(*args):
    return run_cli("-m", "edge.cli", *args)


def test_detect_json_follows_the_design_contract_and_annotates(tmp_path):
    image = shared_path("data", "images", "four_faces.jpg")
    proc = maskdet("detect", "--json", "--annotate", str(tmp_path), image)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"image", "width", "height", "faces", "timings_ms"}
    assert (out["width"], out["height"]) == (512, 355)
    assert len(out["faces"]) == 4
    for face in out["faces"]:
        assert set(face) == {"box", "label", "score", "face_score"}
        assert face["label"] == "no_mask" and 0.5 <= face["score"] <= 1
        assert len(face["box"]) == 4
    assert {"decode", "detect", "classify", "total"} <= set(out["timings_ms"])
    annotated = cv2.imread(str(tmp_path / "four_faces.jpg"))
    assert annotated.shape == (355, 512, 3)
    assert (annotated != cv2.imread(image)).any()


def test_detect_text_output_reads_like_a_sentence_per_face():
    proc = maskdet("detect", shared_path("data", "images", "grace_hopper.jpg"))
    assert proc.returncode == 0, proc.stderr
    assert "1 face(s)" in proc.stdout and "No mask" in proc.stdout


def test_classify_json_per_image():
    masked = shared_path("data", "faces", "with_mask", "with_mask_0001.jpg")
    proc = maskdet("classify", "--json", masked)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"image": masked, "label": "mask",
                                       "score": json.loads(proc.stdout)["score"]}


def test_missing_and_unreadable_images_are_named_without_a_traceback(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    proc = maskdet("detect", "--json", str(tmp_path / "missing.jpg"), str(broken),
                   shared_path("data", "images", "grace_hopper.jpg"))
    assert proc.returncode == 1
    assert "missing.jpg: no such image file" in proc.stderr
    assert "broken.jpg: not a readable image" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1  # the good image is still processed


def _meta_copy(tmp_path, model_bytes=None, size=None):
    with open(META) as f:
        meta = json.load(f)
    model = tmp_path / meta["files"]["int8"]
    if model_bytes is None:
        shutil.copyfile(os.path.join(REPO_ROOT, "models", meta["files"]["int8"]), model)
    else:
        model.write_bytes(model_bytes)
        from edge.inference.model_meta import sha256_of

        meta["sha256"] = {meta["files"]["int8"]: sha256_of(model)}
    if size:
        meta["input"]["size"] = size
    path = tmp_path / "mask_classifier.json"
    path.write_text(json.dumps(meta))
    return str(path)


def test_a_model_that_is_not_tflite_is_named_without_a_traceback(tmp_path):
    meta = _meta_copy(tmp_path, model_bytes=b"<html>404 not found</html>")
    proc = maskdet("classify", "--classifier", meta, shared_path("data", "images", "grace_hopper.jpg"))
    assert proc.returncode == 1
    assert "is not a TFLite model" in proc.stderr and "Traceback" not in proc.stderr


def test_a_model_whose_input_does_not_match_its_metadata_is_refused(tmp_path):
    meta = _meta_copy(tmp_path, size=97)
    proc = maskdet("classify", "--classifier", meta, shared_path("data", "images", "grace_hopper.jpg"))
    assert proc.returncode == 1
    assert "says 97" in proc.stderr and "Traceback" not in proc.stderr


def test_a_tampered_model_fails_its_checksum(tmp_path):
    meta = _meta_copy(tmp_path)
    with open(meta) as f:
        model = tmp_path / json.load(f)["files"]["int8"]
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    proc = maskdet("classify", "--classifier", meta, shared_path("data", "images", "grace_hopper.jpg"))
    assert proc.returncode == 1 and "does not match the sha256" in proc.stderr


def test_models_list_names_every_catalogued_file():
    proc = maskdet("models", "list", "--json")
    assert proc.returncode == 0
    keys = {json.loads(line)["model"] for line in proc.stdout.splitlines()}
    assert {"blazeface_full", "blazeface_short", "yunet", "res10_caffemodel"} <= keys
