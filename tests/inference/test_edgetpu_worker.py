"""The Edge TPU in a worker process, against the stand-in libedgetpu: real processes, real
signals. Each failure at load (none, segv, bus, abort, hang) and mid-run (segv, abort, hang,
error) leaves this process running on the CPU twin with the same outputs and a cause a person
can act on; the Edge TPU comes back after the back-off; `require` makes it an error; the models
of one device share one worker; the CPU-only path starts no process; and `maskdet detect`
survives a crashing, aborting or hanging libedgetpu."""
import json
import logging
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from edge.errors import AcceleratorError
from edge.inference import edgetpu_worker
from edge.inference.accelerator import AcceleratedModel, AcceleratorSettings, Placement
from edge.inference.edgetpu_worker import EdgeTpuHosts, runtime_label
from edge.inference.runtime import find_runtime
from tests.conftest import copy_shipped_classifier, REPO_ROOT, shared_path
from tests.inference.edgetpu_stand_in import (  # noqa: F401  (fixtures)
    CLASSIFIER, classifier_input_shape, cpu_outputs, make_pair, process_is_gone, random_image,
    run_once, stand_in, stand_in_library, wait_until)

QUICK = dict(load_timeout_s=30.0, invoke_timeout_s=2.0, retry_first_s=0.2, retry_max_s=0.4)
NO_RETRY = dict(QUICK, retry_first_s=3600.0, retry_max_s=3600.0)
HANG_AT_LOAD_S = 3.0


@pytest.fixture
def pair(tmp_path):
    """x_int8.tflite and its `_edgetpu` twin (a copy of the shipped classifier)."""
    return make_pair(str(tmp_path / "models"))


def hosts_for(request, **options):
    """EdgeTpuHosts closed at the end of the test."""
    hosts = EdgeTpuHosts(**options)
    request.addfinalizer(hosts.close)
    return hosts


def same(outputs, expected):
    return len(outputs) == len(expected) and all(np.array_equal(a, b) for a, b in zip(outputs, expected))


def the_runtime():
    return runtime_label(find_runtime().name)


def test_the_edge_tpu_runs_in_a_worker_process_with_the_cpu_twins_outputs(stand_in, pair, request):
    hosts = hosts_for(request, **QUICK)
    model = AcceleratedModel(pair, AcceleratorSettings(device="usb:0"), hosts=hosts)
    assert model.placement == Placement("edgetpu", None)
    assert model.accelerator == "edgetpu" and model.fallback_reason is None
    assert model.model_path.endswith("x_int8_edgetpu.tflite")
    pid = model.counters()["worker_pid"]
    assert pid and pid != os.getpid() and not process_is_gone(pid)
    assert stand_in.calls() == [(pid, "usb:0")]  # the delegate was made in the worker, for usb:0
    assert list(model.get_input_details()[0]["shape"]) == classifier_input_shape()
    for seed in range(3):
        image = random_image(model, seed)
        assert same(run_once(model, image), cpu_outputs(pair, image))
    assert model.counters() == {"accelerator": "edgetpu", "fallbacks": 0, "recoveries": 0,
                                "cpu_seconds": 0.0, "tpu_restarts": 0, "worker_pid": pid}
    hosts.close()
    wait_until(lambda: process_is_gone(pid), 10, "the worker exits when the hosts are closed")


LOAD_FAILURES = {
    "none": lambda: ["cannot load the Edge TPU delegate", "no Edge TPU device could be opened"],
    "segv": lambda: ["libedgetpu and the TFLite runtime do not match (crashed with SIGSEGV while "
                     f"loading): install the libedgetpu built for {the_runtime()} (see README, Coral)"],
    "bus": lambda: ["libedgetpu and the TFLite runtime do not match (crashed with SIGBUS while "
                    "loading)"],
    "abort": lambda: ["the Edge TPU aborted while loading (SIGABRT): a USB fault",
                      "use a USB 3 port directly (no hub) and a 3 A power supply"],
    "hang": lambda: [f"the Edge TPU did not answer within {HANG_AT_LOAD_S:g} s while loading: the "
                     "device is wedged; unplug and replug it, or power-cycle"],
}


@pytest.mark.parametrize("behaviour", sorted(LOAD_FAILURES))
def test_a_failure_at_load_leaves_this_process_on_the_cpu_with_the_cause(
        behaviour, stand_in, pair, request, caplog):
    stand_in.behave(behaviour)
    hosts = hosts_for(request, **dict(NO_RETRY, load_timeout_s=HANG_AT_LOAD_S))
    with caplog.at_level(logging.WARNING):
        model = AcceleratedModel(pair, hosts=hosts)
    assert model.accelerator == "cpu" and model.model_path == pair
    for words in LOAD_FAILURES[behaviour]():
        assert words in model.fallback_reason
    assert "Edge TPU unavailable" in caplog.text and model.fallback_reason in caplog.text
    [(pid, _)] = stand_in.calls()
    wait_until(lambda: process_is_gone(pid), 10, "the failed worker is gone")
    image = random_image(model)
    assert same(run_once(model, image), cpu_outputs(pair, image))
    counters = model.counters()
    assert (counters["fallbacks"], counters["recoveries"], counters["worker_pid"]) == (1, 0, None)


MID_RUN_FAILURES = {
    "segv": "the Edge TPU worker crashed during an inference (SIGSEGV): libedgetpu may not match "
            "the TFLite runtime",
    "abort": "the Edge TPU aborted during an inference (SIGABRT): a USB fault; check the cable, "
             "use a USB 3 port directly (no hub) and a 3 A power supply",
    "hang": "the Edge TPU did not answer within 2 s: the device is wedged; unplug and replug it, "
            "or power-cycle",
    "error": "the Edge TPU failed while running: RuntimeError: Failed to invoke",
}


@pytest.mark.parametrize("fault", sorted(MID_RUN_FAILURES))
def test_a_failure_mid_run_is_answered_from_the_cpu_at_once(fault, stand_in, pair, request,
                                                            monkeypatch, caplog):
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT", fault)
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT_AFTER", "2")
    model = AcceleratedModel(pair, hosts=hosts_for(request, **NO_RETRY))
    pid = model.counters()["worker_pid"]
    image = random_image(model)
    expected = cpu_outputs(pair, image)
    where = []
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            assert same(run_once(model, image), expected)  # the failed invoke too: no frame lost
            where.append(model.accelerator)
    assert where == ["edgetpu", "edgetpu", "cpu", "cpu"]
    assert MID_RUN_FAILURES[fault] in model.fallback_reason
    assert "going on on the CPU" in caplog.text
    counters = model.counters()
    assert (counters["fallbacks"], counters["recoveries"], counters["tpu_restarts"]) == (1, 0, 0)
    assert counters["cpu_seconds"] >= 0 and counters["accelerator"] == "cpu"
    wait_until(lambda: process_is_gone(pid), 10, "the failed worker is gone")


def test_the_edge_tpu_is_retried_in_the_background_and_comes_back(stand_in, pair, request):
    """segv at load, then retries that hang (each invoke must stay quick: the retry never blocks
    the frame loop), then the device is "replugged" (ok) and the model goes back to edgetpu."""
    stand_in.behave("segv")
    hosts = hosts_for(request, **dict(QUICK, load_timeout_s=HANG_AT_LOAD_S))
    model = AcceleratedModel(pair, hosts=hosts)
    assert model.accelerator == "cpu" and "SIGSEGV" in model.fallback_reason
    image = random_image(model)
    expected = cpu_outputs(pair, image)
    slowest = [0.0]

    def frame():
        start = time.monotonic()
        assert same(run_once(model, image), expected)
        slowest[0] = max(slowest[0], time.monotonic() - start)

    host = hosts.host(None, find_runtime().name)
    wait_until(lambda: host.starts >= 2, 20, "a retry crashes too", step=frame)
    stand_in.behave("hang")
    wait_until(lambda: "did not answer" in (host.cause or ""), 30, "a retry hangs", step=frame)
    assert model.accelerator == "cpu"
    assert slowest[0] < HANG_AT_LOAD_S / 2, f"an invoke waited {slowest[0]:.2f} s for a retry"
    stand_in.behave("ok")
    wait_until(lambda: model.accelerator == "edgetpu", 30, "back on the Edge TPU", step=frame)
    assert model.placement == Placement("edgetpu", None)
    frame()
    counters = model.counters()
    assert counters["fallbacks"] == 1 and counters["recoveries"] == 1
    assert counters["tpu_restarts"] >= 2 and counters["cpu_seconds"] > 0
    assert counters["worker_pid"] == stand_in.calls()[-1][0]


def test_after_a_fault_mid_run_the_edge_tpu_comes_back(stand_in, pair, request, monkeypatch):
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT", "abort")
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT_AFTER", "1")
    model = AcceleratedModel(pair, hosts=hosts_for(request, **QUICK))
    first = model.counters()["worker_pid"]
    image = random_image(model)
    expected = cpu_outputs(pair, image)
    assert same(run_once(model, image), expected) and model.accelerator == "edgetpu"
    assert same(run_once(model, image), expected) and model.accelerator == "cpu"
    monkeypatch.delenv("MASKDET_STAND_IN_FAULT")  # the next worker has a healthy device
    wait_until(lambda: model.accelerator == "edgetpu", 30, "back on the Edge TPU",
               step=lambda: assert_same_run(model, image, expected))
    assert same(run_once(model, image), expected) and model.accelerator == "edgetpu"
    counters = model.counters()
    assert (counters["fallbacks"], counters["recoveries"]) == (1, 1)
    assert counters["worker_pid"] not in (None, first)


def assert_same_run(model, image, expected):
    assert same(run_once(model, image), expected)


def test_the_models_of_one_device_share_one_worker_and_leave_it_together(
        stand_in, tmp_path, request, monkeypatch):
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT", "segv")
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT_AFTER", "3")
    hosts = hosts_for(request, **NO_RETRY)
    a = AcceleratedModel(make_pair(str(tmp_path), "a_int8"), hosts=hosts)
    b = AcceleratedModel(make_pair(str(tmp_path), "b_int8"), hosts=hosts)
    pid = a.counters()["worker_pid"]
    assert b.counters()["worker_pid"] == pid
    assert stand_in.calls() == [(pid, "-"), (pid, "-")]  # one process, a delegate per model
    image = random_image(a)
    expected = cpu_outputs(a.cpu_path, image)
    for model in (a, b, a):
        assert same(run_once(model, image), expected)
    assert same(run_once(b, image), expected)  # the fourth invoke in the worker crashes it
    assert b.accelerator == "cpu" and "SIGSEGV" in b.fallback_reason
    # `a` has not invoked since, yet its placement already says where its next invoke runs.
    assert a.placement.accelerator == "cpu" and "SIGSEGV" in a.placement.reason
    assert same(run_once(a, image), expected) and a.accelerator == "cpu"
    assert a.counters()["fallbacks"] == b.counters()["fallbacks"] == 1
    assert hosts.model_counters().keys() == {"a_int8.tflite", "b_int8.tflite"}


def test_require_turns_a_crash_at_load_into_an_error_with_the_cause(stand_in, pair, request):
    stand_in.behave("segv")
    with pytest.raises(AcceleratorError) as info:
        AcceleratedModel(pair, AcceleratorSettings(require=True), hosts=hosts_for(request, **QUICK))
    message = str(info.value)
    assert message.startswith("the Edge TPU is required (require_accelerator) but libedgetpu and "
                              "the TFLite runtime do not match (crashed with SIGSEGV while loading)")
    [(pid, _)] = stand_in.calls()
    wait_until(lambda: process_is_gone(pid), 10, "no worker is left behind")


def test_require_turns_an_abort_mid_run_into_an_error_with_the_cause(stand_in, pair, request,
                                                                     monkeypatch):
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT", "abort")
    monkeypatch.setenv("MASKDET_STAND_IN_FAULT_AFTER", "1")
    model = AcceleratedModel(pair, AcceleratorSettings(require=True), hosts=hosts_for(request, **QUICK))
    image = random_image(model)
    run_once(model, image)
    with pytest.raises(AcceleratorError, match=r"required .* aborted during an inference \(SIGABRT\)"):
        run_once(model, image)


def test_require_with_a_device_that_cannot_open_says_what_to_check(stand_in, pair, request):
    stand_in.behave("none")
    with pytest.raises(AcceleratorError) as info:
        AcceleratedModel(pair, AcceleratorSettings(require=True), hosts=hosts_for(request, **QUICK))
    for hint in ("no Edge TPU device could be opened", "udev", "plugdev", "gasket"):
        assert hint in str(info.value)


def test_the_cpu_path_starts_no_worker_process(stand_in, pair, tmp_path, monkeypatch):
    def no_worker(*args, **kwargs):
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(edgetpu_worker, "TpuWorker", no_worker)
    lone = tmp_path / "lone_int8.tflite"
    shutil.copyfile(CLASSIFIER, lone)
    for model in (AcceleratedModel(pair, AcceleratorSettings(mode="cpu")),  # a twin, not wanted
                  AcceleratedModel(str(lone))):                            # auto, no twin
        image = random_image(model)
        assert same(run_once(model, image), cpu_outputs(pair, image))
        assert model.placement == Placement("cpu", None)
        assert model.counters() == {"accelerator": "cpu", "fallbacks": 0, "recoveries": 0,
                                    "cpu_seconds": 0.0, "tpu_restarts": 0, "worker_pid": None}
    assert stand_in.calls() == []


def test_a_missing_edge_tpu_model_in_mode_edgetpu_starts_no_worker(stand_in, tmp_path, monkeypatch):
    monkeypatch.setattr(edgetpu_worker, "TpuWorker", lambda *a, **k: pytest.fail("a worker started"))
    lone = tmp_path / "lone_int8.tflite"
    shutil.copyfile(CLASSIFIER, lone)
    model = AcceleratedModel(str(lone), AcceleratorSettings(mode="edgetpu"))
    assert model.accelerator == "cpu" and "there is no Edge TPU model" in model.fallback_reason


def _classifier_copy(folder, with_twin=True):
    """models/mask_classifier.json and its int8 model (and an `_edgetpu` copy) in `folder`."""
    copy_shipped_classifier(folder)
    if with_twin:
        shutil.copy(os.path.join(folder, "mask_classifier_int8.tflite"),
                    os.path.join(folder, "mask_classifier_int8_edgetpu.tflite"))
    return os.path.join(folder, "mask_classifier.json")


def test_build_pipeline_puts_the_detector_and_the_classifier_in_one_worker(stand_in, tmp_path):
    from edge.errors import FetchError
    from edge.inference.detectors import DetectorSettings, default_model_key
    from edge.inference.fetch import resolve
    from edge.inference.pipeline import ClassifierSettings, build_pipeline

    try:
        blazeface = resolve(default_model_key(DetectorSettings("blazeface", variant="short")))
    except FetchError as exc:
        pytest.skip(f"needs the BlazeFace model: {exc}")
    detector = make_pair(str(tmp_path / "det"), "blazeface_short", source=blazeface)
    pipeline = build_pipeline(DetectorSettings("blazeface", model=detector, variant="short"),
                              ClassifierSettings(_classifier_copy(str(tmp_path / "clf"))))
    try:
        placements = pipeline.placements()
        assert placements["detector"] == placements["classifier"] == Placement("edgetpu", None)
        [(pid, _), (same_pid, _)] = stand_in.calls()
        assert pid == same_pid
        counters = pipeline.accelerator_counters()
        assert set(counters) == {"blazeface_short.tflite", "mask_classifier_int8.tflite"}
        assert {c["worker_pid"] for c in counters.values()} == {pid}
        result = pipeline.analyze(np.zeros((360, 640, 3), np.uint8))
        assert result.faces == []
    finally:
        pipeline.close()
    wait_until(lambda: process_is_gone(pid), 10, "close() stops the worker")
    assert pipeline.placements()["classifier"].accelerator == "cpu"
    pipeline.analyze(np.zeros((360, 640, 3), np.uint8))  # goes on, on the CPU


@pytest.mark.parametrize("behaviour, words", [
    ("segv", "crashed with SIGSEGV while loading"),
    ("abort", "aborted while loading (SIGABRT)"),
    ("hang", "did not answer within 3 s while loading"),
])
def test_maskdet_detect_survives_a_bad_libedgetpu(behaviour, words, stand_in, tmp_path):
    """The real command as a process: libedgetpu found through LD_LIBRARY_PATH (as on a Pi),
    the classifier's `_edgetpu` twin beside it; exit 0, faces classified, the cause on stderr."""
    image = shared_path("data", "images", "four_faces.jpg")
    meta = _classifier_copy(str(tmp_path / "clf"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MASKDET_STAND_IN") and k != "MASKDET_EDGETPU_LIBRARY"}
    env.update(LD_LIBRARY_PATH=os.pathsep.join(p for p in (stand_in.folder,
                                                           env.get("LD_LIBRARY_PATH")) if p),
               MASKDET_STAND_IN=behaviour, MASKDET_EDGETPU_LOAD_TIMEOUT_S="3",
               TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "detect", "--json", "--classifier",
                           meta, image], capture_output=True, text=True, timeout=300, env=env,
                          cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["faces"]) == 4
    assert all(f["label"] in ("mask", "no_mask") for f in result["faces"]), result
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert any("Edge TPU unavailable" in line and words in line for line in warnings), proc.stderr


def test_maskdet_detect_uses_the_worker_when_libedgetpu_works(stand_in, tmp_path):
    """The same command with a healthy stand-in: the classifier runs in the worker, and gives
    the labels the CPU gives."""
    image = shared_path("data", "images", "four_faces.jpg")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MASKDET_STAND_IN") and k != "MASKDET_EDGETPU_LIBRARY"}

    def detect(meta, **extra):
        proc = subprocess.run([sys.executable, "-m", "edge.cli", "-v", "detect", "--json",
                               "--classifier", meta, image], capture_output=True, text=True,
                              timeout=300, env=dict(env, **extra), cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout), proc.stderr

    on_tpu, err = detect(_classifier_copy(str(tmp_path / "tpu")),
                         LD_LIBRARY_PATH=stand_in.folder, MASKDET_STAND_IN_LOG=stand_in.log)
    assert "on the Edge TPU" in err and "Edge TPU unavailable" not in err
    assert len(stand_in.calls()) == 1
    on_cpu, _ = detect(_classifier_copy(str(tmp_path / "cpu"), with_twin=False))
    assert [(f["label"], f["score"]) for f in on_tpu["faces"]] == \
        [(f["label"], f["score"]) for f in on_cpu["faces"]]


class FakeClock:
    """A monotonic clock a test moves by hand (the back-off is minutes long)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_back_off_doubles_up_to_its_limit_and_each_retry_is_a_new_worker(stand_in, pair,
                                                                               request):
    stand_in.behave("abort")
    clock = FakeClock()
    hosts = hosts_for(request, load_timeout_s=30.0, retry_first_s=10.0, retry_max_s=40.0,
                      clock=clock)
    model = AcceleratedModel(pair, hosts=hosts)
    host = hosts.host(None, find_runtime().name)
    image = random_image(model)
    waits = []
    for _ in range(4):
        waits.append(host.next_retry - clock.now)
        clock.now = host.next_retry - 0.001
        run_once(model, image)
        assert host.state == "down"  # not due yet: nothing started
        clock.now = host.next_retry
        starts = host.starts
        run_once(model, image)       # due: a worker starts, in the background
        assert host.starts == starts + 1 and host.state == "starting"
        wait_until(lambda: host.state == "down", 20, "the retry aborts too",
                   step=lambda: run_once(model, image))
    assert waits == [10.0, 20.0, 40.0, 40.0]
    assert model.accelerator == "cpu" and "SIGABRT" in model.fallback_reason
    assert len({pid for pid, _ in stand_in.calls()}) == 5
    assert model.counters()["tpu_restarts"] == 4


def test_a_missing_libedgetpu_is_not_retried(stand_in, pair, tmp_path, request, monkeypatch):
    monkeypatch.setenv("MASKDET_EDGETPU_LIBRARY", str(tmp_path / "absent" / "libedgetpu.so.1"))
    clock = FakeClock()
    hosts = hosts_for(request, **dict(QUICK, clock=clock))
    model = AcceleratedModel(pair, hosts=hosts)
    assert model.accelerator == "cpu"
    assert "cannot load the Edge TPU delegate" in model.fallback_reason
    assert "cannot open shared object file" in model.fallback_reason
    clock.now += 10 * 365 * 86400.0
    run_once(model, random_image(model))
    assert hosts.host(None, find_runtime().name).starts == 1


def test_a_released_device_lets_another_worker_in_and_comes_back_later(stand_in, pair, request):
    """A reload: the running models release the Edge TPU (their worker exits, they answer from
    the CPU), a second host opens it, and once that one is gone the first returns on retry."""
    clock = FakeClock()
    hosts = hosts_for(request, **dict(QUICK, clock=clock))
    model = AcceleratedModel(pair, hosts=hosts)
    image = random_image(model)
    expected = cpu_outputs(pair, image)
    old_pid = model.counters()["worker_pid"]
    hosts.release("released for a reload", retry_in_s=30.0)
    assert model.accelerator == "cpu" and "released for a reload" in model.fallback_reason
    assert same(run_once(model, image), expected)
    successor = hosts_for(request, **QUICK)
    other = AcceleratedModel(pair, hosts=successor)
    assert other.accelerator == "edgetpu" and other.counters()["worker_pid"] != old_pid
    successor.close()  # the reload was refused: the new models are dropped
    clock.now += 31.0
    wait_until(lambda: model.accelerator == "edgetpu", 30, "back on the Edge TPU",
               step=lambda: run_once(model, image))
    assert same(run_once(model, image), expected)
