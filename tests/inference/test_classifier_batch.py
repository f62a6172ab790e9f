"""All faces of a frame in one invoke on the CPU: the same scores as one invoke per face (to one
quantization step) on real faces, with 1, 3 and 9 faces and after a resize back to fewer; one face
that cannot be cropped costs the others nothing; a runtime whose batches fail classifies face by
face, said once; on the Edge TPU (the stand-in) one invoke per face, and a fallback in the middle
of a frame sends the rest to the CPU batch, and the Edge TPU still comes back."""
import importlib.util
import logging
from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge.errors import DataError
from edge.inference import classifier as classifier_module
from edge.inference import tensors
from edge.inference.accelerator import AcceleratedModel, AcceleratorSettings
from edge.inference.classifier import MAX_BATCH, MaskClassifier, check_batches
from edge.inference.edgetpu_worker import EdgeTpuHosts
from edge.inference.geometry import Face
from edge.inference.model_meta import load_classifier_meta
from edge.inference.pipeline import FaceMaskPipeline
from edge.inference.runtime import RUNTIME_MODULES, Runtime, find_runtime
from edge.paths import default_classifier
from tests.conftest import shared_path
from tests.inference import edgetpu_stand_in
from tests.inference.edgetpu_stand_in import make_pair, wait_until

stand_in_library = edgetpu_stand_in.stand_in_library  # the stand-in libedgetpu's fixtures
stand_in = edgetpu_stand_in.stand_in

CPU_1 = AcceleratorSettings(mode="cpu", threads=1)
# four_faces.jpg: its four faces (as YuNet finds them), then five boxes shifted off a face, real
# pixels whose scores lie between the labels (0.13 to 0.87), so that a mix-up of rows shows.
FOUR_FACES_BOXES = [(254, 50, 347, 173), (440, 121, 490, 183), (8, 103, 51, 160),
                    (134, 86, 226, 206), (440, 161, 490, 223), (440, 181, 490, 243),
                    (8, 163, 51, 220), (48, 103, 91, 160), (8, 63, 51, 120)]
# Frame 21 of putting_on_mask.mp4 (1280x720): the face as YuNet finds it, and two shifts of it.
VIDEO_BOXES = [(532, 114, 692, 331), (532, 154, 692, 371), (492, 114, 652, 331)]
OUTSIDE = (5000, 5000, 5100, 5100)


@pytest.fixture(scope="module")
def four_faces():
    return cv2.imread(shared_path("data", "images", "four_faces.jpg"))


@pytest.fixture(scope="module")
def video_frame():
    capture = cv2.VideoCapture(shared_path("data", "videos", "putting_on_mask.mp4"))
    try:
        for _ in range(21):
            ok, frame = capture.read()
            assert ok
    finally:
        capture.release()
    return frame


@pytest.fixture
def no_refusals(monkeypatch):
    """A process in which no runtime has refused batches yet."""
    monkeypatch.setattr(classifier_module, "NO_BATCHES", {})


def open_classifier(runtime=None, settings=CPU_1):
    return MaskClassifier.open(default_classifier(), settings, runtime)


def first_model(classifier):
    """The first model of a pair alone (as `tpu_classifier` runs it)."""
    return MaskClassifier(replace(classifier.meta, second_opinion=None), classifier.interpreter)


def step(classifier):
    return tensors.output_step(classifier.interpreter.get_output_details()[0])


def assert_as_one_by_one(classifier, frame, boxes, answers):
    """Each answer is what classify_box gives for its box (scores to one quantization step)."""
    assert len(answers) == len(boxes)
    for box, answer in zip(boxes, answers):
        try:
            alone = classifier.classify_box(frame, box)
        except DataError as exc:
            assert isinstance(answer, DataError) and str(answer) == str(exc)
            continue
        assert abs(answer.no_mask_probability - alone.no_mask_probability) <= step(classifier) + 1e-9
        if abs(alone.no_mask_probability - classifier.meta.threshold) > step(classifier):
            assert answer.label == alone.label


def count_calls(monkeypatch, obj, name):
    """Count the calls of obj.name (an instance attribute wrapping the method)."""
    calls = []
    method = getattr(obj, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return method(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted, raising=False)
    return calls


def test_a_batch_of_images_is_quantized_as_each_image_alone(four_faces):
    details = {"dtype": np.int8, "quantization": (0.0078125, -1)}
    images = np.stack([four_faces[:224, :224], four_faces[100:324, 200:424]])
    together = tensors.quantize_pixels(images, details, 127.5, 127.5)
    assert together.shape == images.shape and together.dtype == np.int8
    for image, row in zip(images, together):
        assert np.array_equal(row, tensors.quantize_pixels(image, details, 127.5, 127.5))


@pytest.mark.parametrize("count", [1, 3, 9])
def test_a_batch_gives_the_scores_of_one_invoke_per_face(count, four_faces, video_frame, no_refusals):
    classifier = open_classifier()
    boxes = FOUR_FACES_BOXES[:count]
    assert_as_one_by_one(classifier, four_faces, boxes, classifier.classify_boxes(four_faces, boxes))
    if count > 1:
        assert classifier._batch is not None  # the batch interpreter answered, not the model
    video = VIDEO_BOXES[:count]
    assert_as_one_by_one(classifier, video_frame, video, classifier.classify_boxes(video_frame, video))


def test_the_nine_faces_are_a_real_mix_of_scores(four_faces):
    classifier = open_classifier()
    scores = [c.no_mask_probability for c in classifier.classify_boxes(four_faces, FOUR_FACES_BOXES)]
    # rows in the wrong order would show: at least five different scores, far apart
    assert len({round(s, 2) for s in scores}) >= 5 and max(scores) - min(scores) > 0.5, scores


def test_one_invoke_per_frame_up_to_the_largest_batch_then_chunks(four_faces, monkeypatch, no_refusals):
    classifier = open_classifier()
    classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:2])  # opens the batch interpreter
    batch_invokes = count_calls(monkeypatch, classifier._batch, "invoke")
    model_invokes = count_calls(monkeypatch, classifier.interpreter, "invoke")
    classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:5])
    assert (len(batch_invokes), len(model_invokes)) == (1, 0)
    assert tensors.input_details(classifier._batch)["shape"][0] == 5
    many = (FOUR_FACES_BOXES * 2)[:MAX_BATCH + 3]
    classifier.classify_boxes(four_faces, many)
    assert (len(batch_invokes), len(model_invokes)) == (3, 0)  # 8 faces, then 3
    classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:1])
    assert (len(batch_invokes), len(model_invokes)) == (3, 1)  # one face: the model's own shape


def test_after_a_resize_back_to_fewer_faces_the_scores_are_the_same(four_faces, monkeypatch,
                                                                  no_refusals):
    classifier = open_classifier()
    for count in (9, 8, 3, 2, 3):
        boxes = FOUR_FACES_BOXES[:count]
        assert_as_one_by_one(classifier, four_faces, boxes, classifier.classify_boxes(four_faces, boxes))
    assert tensors.input_details(classifier._batch)["shape"][0] == 3
    allocations = count_calls(monkeypatch, classifier._batch, "allocate_tensors")
    classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:3])
    assert allocations == []  # the same number of faces: no re-allocation
    classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:4])
    assert len(allocations) == 1


def test_a_face_that_cannot_be_cropped_is_its_error_and_the_others_are_batched(
        four_faces, monkeypatch, no_refusals):
    classifier = open_classifier()
    classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:2])
    batch_invokes = count_calls(monkeypatch, classifier._batch, "invoke")
    boxes = [FOUR_FACES_BOXES[0], OUTSIDE, FOUR_FACES_BOXES[4], FOUR_FACES_BOXES[5]]
    answers = classifier.classify_boxes(four_faces, boxes)
    assert isinstance(answers[1], DataError) and "outside the 512x355 image" in str(answers[1])
    assert_as_one_by_one(classifier, four_faces, boxes, answers)
    assert len(batch_invokes) == 1
    assert classifier.classify_boxes(four_faces, []) == []


def test_the_pipeline_classifies_a_frames_faces_together_and_keeps_each_faults(
        four_faces, monkeypatch, no_refusals):
    class Fixed:
        name, placement = "fixed", None

        def __init__(self, faces):
            self.faces = faces

        def detect(self, frame):
            return self.faces

    classifier = open_classifier()
    faces = [Face(FOUR_FACES_BOXES[0], 0.9), Face((10, 10, 30, 30), 0.8), Face(OUTSIDE, 0.7),
             Face(FOUR_FACES_BOXES[3], 0.6), Face(FOUR_FACES_BOXES[6], 0.5)]
    pipeline = FaceMaskPipeline(Fixed(faces), classifier, min_face_size=32)
    calls = count_calls(monkeypatch, classifier, "classify_boxes")
    results = pipeline.analyze(four_faces).faces
    assert [len(boxes) for _, boxes in calls] == [4]  # all big enough (the one outside too), at once
    assert [r.label for r in results][1:3] == ["unknown", "unknown"]
    assert results[1].reason == "smaller than 32 px (20 px)"
    assert "outside the 512x355 image" in results[2].reason
    for face, result in zip(faces, results):
        if result.reason is None:
            alone = classifier.classify_box(four_faces, face.box)
            assert abs(result.score - alone.score) <= step(classifier) + 1e-9
            assert (result.box, result.face_score) == (face.box, face.score)


def test_the_warm_up_opens_the_batch_interpreter_before_the_first_frame_of_two_faces(
        four_faces, monkeypatch, no_refusals):
    from edge.inference.pipeline import build_pipeline

    pipeline = build_pipeline(accelerator=CPU_1)
    try:
        pipeline.warm_up()
        opened = count_calls(monkeypatch, classifier_module, "open_interpreter")
        answers = pipeline.classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:2])
        assert opened == []
        assert [a.label for a in answers] == [pipeline.classifier.classify_box(four_faces, b).label
                                              for b in FOUR_FACES_BOXES[:2]]
    finally:
        pipeline.close()


def installed_runtimes():
    return [name for name, _ in RUNTIME_MODULES if importlib.util.find_spec(name) is not None]


@pytest.mark.parametrize("name", [name for name, _ in RUNTIME_MODULES])
def test_each_installed_runtime_runs_int8_batches(name, four_faces, no_refusals, caplog):
    if name not in installed_runtimes():
        pytest.skip(f"{name} is not installed")
    runtime = find_runtime(name)
    classifier = open_classifier(runtime)
    check_batches(classifier._batch_interpreter(), classifier.meta.input_size,
                  classifier.meta.mean, classifier.meta.std)
    with caplog.at_level(logging.WARNING, logger="edge.inference.classifier"):
        answers = classifier.classify_boxes(four_faces, FOUR_FACES_BOXES)
    assert classifier_module.NO_BATCHES == {} and caplog.records == []
    assert_as_one_by_one(classifier, four_faces, FOUR_FACES_BOXES, answers)


def broken_runtime(name, **overrides):
    """The installed runtime under another name, its Interpreter class with methods replaced."""
    real = find_runtime()
    broken = type("BrokenInterpreter", (real.interpreter_class,), overrides)
    return Runtime(name, broken, real.load_delegate)


def refuses_resizing(self, index, shape, *args, **kwargs):
    raise RuntimeError("resizing is not supported here")


def mixes_rows(self, index):
    """A runtime that accepts a batch and gets it wrong: every row is the first one."""
    out = type(self).__mro__[1].get_tensor(self, index)
    if out.ndim == 2 and out.shape[0] > 1:
        out = np.repeat(out[:1], out.shape[0], axis=0)
    return out


@pytest.mark.parametrize("overrides, cause", [
    ({"resize_tensor_input": refuses_resizing}, "resizing is not supported here"),
    ({"get_tensor": mixes_rows}, "a batch of two gave"),
])
def test_a_runtime_whose_batches_fail_classifies_face_by_face_and_says_so_once(
        overrides, cause, four_faces, no_refusals, caplog):
    runtime = broken_runtime("broken_batches", **overrides)
    classifier = open_classifier(runtime)
    with caplog.at_level(logging.WARNING, logger="edge.inference.classifier"):
        first = classifier.classify_boxes(four_faces, FOUR_FACES_BOXES)
        second = open_classifier(runtime).classify_boxes(four_faces, FOUR_FACES_BOXES[:3])
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "broken_batches" in warnings[0] and cause in warnings[0]
    assert "one invoke per face" in warnings[0]
    assert cause in classifier_module.NO_BATCHES["broken_batches"]
    assert classifier._batch is None
    reference = open_classifier()  # the real runtime, face by face
    assert_as_one_by_one(reference, four_faces, FOUR_FACES_BOXES, first)
    assert_as_one_by_one(reference, four_faces, FOUR_FACES_BOXES[:3], second)


def test_a_batch_that_fails_when_run_goes_face_by_face(four_faces, monkeypatch, no_refusals, caplog):
    classifier = open_classifier()
    classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:2])

    def fails():
        raise RuntimeError("out of memory for the batch")

    monkeypatch.setattr(classifier._batch, "invoke", fails, raising=False)
    with caplog.at_level(logging.WARNING, logger="edge.inference.classifier"):
        answers = classifier.classify_boxes(four_faces, FOUR_FACES_BOXES)
    assert_as_one_by_one(open_classifier(), four_faces, FOUR_FACES_BOXES, answers)
    assert "out of memory for the batch" in caplog.text and classifier._batch is None


# ---- the Edge TPU (the stand-in libedgetpu: the model runs in the worker process)

QUICK = dict(load_timeout_s=30.0, invoke_timeout_s=2.0, retry_first_s=0.2, retry_max_s=0.4)
NO_RETRY = dict(QUICK, retry_first_s=3600.0, retry_max_s=3600.0)


def tpu_classifier(tmp_path, request, **options):
    """The shipped classifier as an `_edgetpu` pair on the stand-in Edge TPU."""
    hosts = EdgeTpuHosts(**options)
    request.addfinalizer(hosts.close)
    pair = make_pair(str(tmp_path / "models"))
    model = AcceleratedModel(pair, AcceleratorSettings(threads=1), hosts=hosts)
    # the first model alone: a pair's second opinion is a CPU model of its own (test_second_opinion)
    return MaskClassifier(replace(load_classifier_meta(default_classifier()), second_opinion=None),
                          model)


def test_on_the_edge_tpu_each_face_is_one_invoke_in_the_worker(stand_in, tmp_path, request,
                                                               four_faces, monkeypatch, no_refusals):
    classifier = tpu_classifier(tmp_path, request, **NO_RETRY)
    assert classifier.placement.accelerator == "edgetpu"
    invokes = count_calls(monkeypatch, classifier.interpreter, "invoke")
    answers = classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:5])
    assert len(invokes) == 5 and classifier._batch is None
    assert classifier.placement.accelerator == "edgetpu"
    assert_as_one_by_one(first_model(open_classifier()), four_faces, FOUR_FACES_BOXES[:5], answers)


def test_a_pair_with_its_first_model_on_the_edge_tpu_asks_the_cpu_about_the_unsure_faces(
        stand_in, tmp_path, request, four_faces, monkeypatch, no_refusals):
    """The field's pair: the first model on the Edge TPU, one invoke per face in the worker; the
    second on the CPU, one invoke per face in the band; the answers those of the CPU pair."""
    first = tpu_classifier(tmp_path, request, **NO_RETRY)
    reference = open_classifier()
    if reference.meta.second_opinion is None:
        pytest.skip("the shipped classifier has no second opinion")
    pair = MaskClassifier(reference.meta, first.interpreter, reference.second)
    assert pair.placement.accelerator == "edgetpu"
    invokes = count_calls(monkeypatch, pair.interpreter, "invoke")
    second_invokes = count_calls(monkeypatch, pair.second, "invoke")
    boxes = FOUR_FACES_BOXES
    answers = pair.classify_boxes(four_faces, boxes)
    unsure = sum(reference.meta.second_opinion.asks(first_model(reference).classify_box(
        four_faces, box).no_mask_probability) for box in boxes)
    assert len(invokes) == len(boxes) and len(second_invokes) == unsure > 0
    assert pair.placement.accelerator == "edgetpu" and pair.second.accelerator == "cpu"
    assert_as_one_by_one(reference, four_faces, boxes, answers)


def test_a_fallback_in_the_middle_of_a_frame_sends_the_rest_to_the_cpu_batch(
        stand_in, tmp_path, request, four_faces, monkeypatch, no_refusals):
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT", "error")
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT_AFTER", "2")
    classifier = tpu_classifier(tmp_path, request, **NO_RETRY)
    invokes = count_calls(monkeypatch, classifier.interpreter, "invoke")
    answers = classifier.classify_boxes(four_faces, FOUR_FACES_BOXES)
    # two faces on the Edge TPU, the third's invoke failed there and was answered by the CPU
    # twin, the six left went in one CPU batch
    assert len(invokes) == 3 and classifier.placement.accelerator == "cpu"
    assert "failed while running" in classifier.placement.reason
    assert classifier._batch is not None
    assert_as_one_by_one(first_model(open_classifier()), four_faces, FOUR_FACES_BOXES, answers)
    batch_invokes = count_calls(monkeypatch, classifier._batch, "invoke")
    answers = classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:4])
    # waiting for the Edge TPU: the first face through the model (it moves the retry on)
    assert (len(invokes), len(batch_invokes)) == (4, 1)
    assert_as_one_by_one(first_model(open_classifier()), four_faces, FOUR_FACES_BOXES[:4], answers)


def test_frames_of_several_faces_still_bring_the_edge_tpu_back(stand_in, tmp_path, request,
                                                              four_faces, monkeypatch, no_refusals):
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT", "error")
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT_AFTER", "1")
    classifier = tpu_classifier(tmp_path, request, **QUICK)
    classifier.classify_boxes(four_faces, FOUR_FACES_BOXES[:4])
    assert classifier.placement.accelerator == "cpu"
    monkeypatch.delenv("MASKDET_STAND_IN_FAULT")  # the next worker has a healthy device
    reference = first_model(open_classifier())

    def frame():
        boxes = FOUR_FACES_BOXES[:4]
        assert_as_one_by_one(reference, four_faces, boxes, classifier.classify_boxes(four_faces, boxes))

    wait_until(lambda: classifier.placement.accelerator == "edgetpu", 30, "back on the Edge TPU",
               step=frame)
    frame()
    assert classifier.interpreter.counters()["recoveries"] == 1
