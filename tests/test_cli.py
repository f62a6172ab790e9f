"""`maskdet detect / classify / models / bench`: output contract, help, and clear errors (no
tracebacks)."""
import argparse
import json
import os
import shutil
import subprocess
import sys

import cv2
import pytest

from tests.conftest import damage_last_byte, REPO_ROOT, run_cli, shared_path
from tests.inference.test_images import bomb_png

META = os.path.join(REPO_ROOT, "models", "mask_classifier.json")


def maskdet(*args, env=None):
    return run_cli("-m", "edge.cli", *args, env=env)


def test_version_prints_the_package_version():
    from edge import __version__

    proc = maskdet("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"maskdet {__version__}"


def test_top_level_help_lists_every_command_with_its_help():
    from edge.cli import COMMANDS

    proc = maskdet("--help")
    assert proc.returncode == 0
    for command in COMMANDS:
        assert f"{command.name} " in proc.stdout and command.help in proc.stdout, command.name


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_of_every_command_has_help_and_shows_its_default():
    from edge.cli import build_parser

    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) >= {"run", "check-config", "detect", "classify", "models", "bench"}
    for name, sub in [("maskdet", parser), *commands.items()]:
        formatter = sub._get_formatter()
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help"
            is_flag = action.nargs == 0
            if action.option_strings and not is_flag:
                text = formatter._get_help_string(action) % {"default": action.default}
                assert "default" in text, f"{where} does not say its default: {text!r}"
                if action.default is not None:
                    assert str(action.default) in text, f"{where}: {text!r}"


def test_run_help_shows_the_default_config_path():
    proc = maskdet("run", "--help")
    assert proc.returncode == 0
    assert "(default: /etc/maskdet/config.yaml)" in proc.stdout


def test_a_new_command_needs_only_an_entry_in_commands():
    from edge.cli import COMMANDS, Command, build_parser

    def add(p):
        p.add_argument("--seconds", type=float, default=2.0, help="how long")

    extra = Command("blink", lambda args: args.seconds, "blink the lights", add)
    parser = build_parser([*COMMANDS, extra])
    args = parser.parse_args(["blink", "--seconds", "3"])
    assert args.func(args) == 3.0
    assert "blink" in parser.format_help()


def test_bench_refuses_an_unknown_backend_as_a_usage_error():
    proc = maskdet("bench", "--backends", "nope")
    assert proc.returncode == 2
    assert "argument --backends: invalid choice: 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr and "KeyError" not in proc.stderr
    proc = maskdet("bench", "--runtimes", "nope")
    assert proc.returncode == 2 and "argument --runtimes: invalid choice" in proc.stderr


def _repo_benchmarks():
    return {name: open(os.path.join(REPO_ROOT, *name.split("/")), "rb").read()
            for name in ("BENCHMARKS.md", "benchmarks/results.json")}


def test_bench_writes_into_the_cache_or_out_but_not_the_repository(tmp_path):
    before = _repo_benchmarks()
    cache = tmp_path / "cache"
    proc = maskdet("bench", "--skip-core", env={"MASKDET_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert (cache / "bench" / "results.json").is_file() and (cache / "bench" / "BENCHMARKS.md").is_file()
    assert str(cache / "bench" / "BENCHMARKS.md") in proc.stdout
    proc = maskdet("bench", "--skip-core", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "BENCHMARKS.md").read_text().startswith("# Benchmarks")
    assert _repo_benchmarks() == before


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


def test_classify_json_per_image_matches_the_classifier_in_process():
    from edge.inference.classifier import MaskClassifier, as_rgb

    masked = shared_path("data", "faces", "with_mask", "with_mask_0001.jpg")
    proc = maskdet("classify", "--json", masked)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"image", "label", "score"}
    assert (out["image"], out["label"]) == (masked, "mask")
    assert isinstance(out["score"], float) and 0.5 < out["score"] <= 1
    expected = MaskClassifier.open(META).classify(as_rgb(cv2.imread(masked)))
    assert expected.label == "mask"
    assert out["score"] == round(expected.score, 4)


def test_classify_text_says_the_label_and_a_percentage():
    masked = shared_path("data", "faces", "with_mask", "with_mask_0001.jpg")
    proc = maskdet("classify", masked)
    assert proc.returncode == 0, proc.stderr
    path, said = proc.stdout.strip().split(": ")
    assert path == masked and said.startswith("Mask ") and said.endswith("%")
    assert 50 < float(said[len("Mask "):-1]) <= 100


@pytest.mark.parametrize("command", ["detect", "classify"])
def test_the_runtime_says_nothing_on_stderr(command):
    # TFLite's C++ prints `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` straight to
    # file descriptor 2 when the interpreter allocates its tensors
    proc = maskdet(command, "--json", shared_path("data", "images", "grace_hopper.jpg"))
    assert proc.returncode == 0, proc.stderr
    assert "INFO:" not in proc.stderr and "XNNPACK" not in proc.stderr
    assert proc.stderr == ""
    assert json.loads(proc.stdout)["image"].endswith("grace_hopper.jpg")


def test_faces_below_min_face_are_unknown_with_the_reason():
    proc = maskdet("detect", "--json", "--min-face", "500", shared_path("data", "images", "four_faces.jpg"))
    assert proc.returncode == 0, proc.stderr
    faces = json.loads(proc.stdout)["faces"]
    assert len(faces) == 4
    for face in faces:
        assert face["label"] == "unknown" and face["score"] is None
        assert face["reason"].startswith("smaller than 500 px (")
        assert face["reason"].endswith(" px)")
        assert 0 < int(face["reason"].split("(")[1].split()[0]) < 500
    text = maskdet("detect", "--min-face", "500", shared_path("data", "images", "four_faces.jpg"))
    assert text.stdout.count("Unknown") == 4 and text.stdout.count("(smaller than 500 px") == 4


@pytest.mark.parametrize("command", ["detect", "classify"])
def test_detect_and_classify_round_scores_alike(command):
    from edge.inference.annotate import percent

    image = shared_path("data", "images", "grace_hopper.jpg")
    out = json.loads(maskdet(command, "--json", image).stdout)
    score = out["faces"][0]["score"] if command == "detect" else out["score"]
    assert score == round(score, 4) and len(repr(score).split(".")[1]) <= 4
    assert f"No mask {percent(score)}" in maskdet(command, image).stdout


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


def test_a_folder_argument_takes_the_images_in_it(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_path("data", "images", "grace_hopper.jpg"), photos / "b.jpg")
    shutil.copy(shared_path("data", "images", "four_faces.jpg"), photos / "a.JPG")
    (photos / "notes.txt").write_text("not an image")
    (photos / "sub").mkdir()
    shutil.copy(shared_path("data", "images", "grace_hopper.jpg"), photos / "sub" / "c.jpg")
    (tmp_path / "empty").mkdir()
    proc = maskdet("detect", "--json", str(photos), str(tmp_path / "empty"))
    assert proc.returncode == 1  # the empty folder
    assert [json.loads(line)["image"] for line in proc.stdout.splitlines()] == \
        [str(photos / "a.JPG"), str(photos / "b.jpg")]
    assert proc.stderr.strip() == f"maskdet: error: {tmp_path / 'empty'}: a folder without images " \
        "(.jpg, .jpeg, .png, .bmp, .webp)"
    proc = maskdet("classify", "--json", str(photos))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2


def _run_measured(*args):
    """The command line in a child process; (CompletedProcess, the child's peak RSS in MiB)."""
    script = ("import json, resource, subprocess, sys\n"
              "p = subprocess.run([sys.executable, '-m', 'edge.cli', *sys.argv[1:]], "
              "capture_output=True, text=True)\n"
              "print(json.dumps([p.returncode, p.stdout, p.stderr, "
              "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))")
    proc = run_cli("-c", script, *args, timeout=120)
    assert proc.returncode == 0, proc.stderr
    code, out, err, peak_mib = json.loads(proc.stdout)
    return code, out, err, peak_mib


def test_a_decompression_bomb_is_one_error_and_costs_no_memory(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(60000, 60000))
    good = shared_path("data", "images", "grace_hopper.jpg")
    code, out, err, peak_mib = _run_measured("detect", "--json", str(bomb), good)
    assert code == 1
    assert err.strip() == f"maskdet: error: {bomb}: 60000x60000 pixels (3,600 megapixels) is over " \
        "the limit of 64 megapixels; scale the image down"
    assert len(out.splitlines()) == 1  # the good image is still processed
    assert peak_mib < 1024, f"the process grew to {peak_mib:.0f} MiB"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_a_file_without_read_permission_is_one_error(tmp_path):
    secret = tmp_path / "secret.jpg"
    shutil.copy(shared_path("data", "images", "grace_hopper.jpg"), secret)
    secret.chmod(0)
    proc = maskdet("detect", "--json", str(secret), shared_path("data", "images", "grace_hopper.jpg"))
    assert proc.returncode == 1
    assert f"{secret}: cannot be read" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stdout.splitlines()) == 1


def test_annotate_names_inputs_without_extension_and_same_names_apart(tmp_path):
    hopper = shared_path("data", "images", "grace_hopper.jpg")
    four = shared_path("data", "images", "four_faces.jpg")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(hopper, tmp_path / "a" / "door.jpg")
    shutil.copy(four, tmp_path / "b" / "door.jpg")
    shutil.copy(hopper, tmp_path / "snapshot")  # a JPEG without an extension
    out = tmp_path / "out"
    proc = maskdet("detect", "--annotate", str(out), str(tmp_path / "a" / "door.jpg"),
                   str(tmp_path / "b" / "door.jpg"), str(tmp_path / "snapshot"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == ["door.jpg", "door_2.jpg", "snapshot.jpg"]
    assert cv2.imread(str(out / "door.jpg")).shape == cv2.imread(hopper).shape
    assert cv2.imread(str(out / "door_2.jpg")).shape == cv2.imread(four).shape
    assert cv2.imread(str(out / "snapshot.jpg")).shape == cv2.imread(hopper).shape


def test_annotate_never_overwrites_an_input_in_the_output_folder(tmp_path):
    photo = tmp_path / "door.jpg"
    shutil.copy(shared_path("data", "images", "grace_hopper.jpg"), photo)
    original = photo.read_bytes()
    proc = maskdet("detect", "--annotate", str(tmp_path), str(photo))
    assert proc.returncode == 0, proc.stderr
    assert photo.read_bytes() == original
    assert (tmp_path / "door_2.jpg").is_file()


def _meta_copy(tmp_path, model_bytes=None, size=None):
    with open(META) as f:
        meta = json.load(f)
    model = tmp_path / meta["files"]["int8"]
    for file in meta["files"].values():  # the model, and a second opinion's
        shutil.copyfile(os.path.join(REPO_ROOT, "models", file), tmp_path / file)
    if model_bytes is not None:
        model.write_bytes(model_bytes)
        from edge.inference.model_meta import sha256_of

        meta["sha256"][meta["files"]["int8"]] = sha256_of(model)
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
    damage_last_byte(model)
    proc = maskdet("classify", "--classifier", meta, shared_path("data", "images", "grace_hopper.jpg"))
    assert proc.returncode == 1 and "does not match the sha256" in proc.stderr


def test_models_list_names_every_catalogued_file():
    proc = maskdet("models", "list", "--json")
    assert proc.returncode == 0
    keys = {json.loads(line)["model"] for line in proc.stdout.splitlines()}
    assert {"blazeface_full", "blazeface_short", "yunet", "res10_caffemodel"} <= keys


def test_test_indicator_walks_the_configured_outputs_on_mock_pins():
    config = os.path.join(REPO_ROOT, "systemd", "maskdet.example.yaml")
    proc = run_cli("-m", "edge.cli", "test-indicator", "--config", config, "--seconds", "0.01",
                   env={"GPIOZERO_PIN_FACTORY": "mock"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    steps = [line for line in lines if line.startswith(("green LED", "red LED", "buzzer"))]
    assert [s.split()[0] for s in steps] == ["green", "red", "buzzer"]
    assert "GPIO17" in steps[0] and "GPIO27" in steps[1] and "GPIO22" in steps[2]
    assert "all outputs off" in lines[-1]


def test_test_indicator_without_gpio_says_what_to_install():
    config = os.path.join(REPO_ROOT, "systemd", "maskdet.example.yaml")
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "test-indicator", "--config", config],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    if proc.returncode == 0:
        pytest.skip("this machine has a working GPIO pin factory")
    assert proc.returncode == 69
    assert "maskdet[pi]" in proc.stderr and "Traceback" not in proc.stderr
