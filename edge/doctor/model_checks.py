"""The model files the config runs: the classifier (its metadata, its sha256 against it, that it
opens and runs on the CPU) and the face detector (resolved as `run` resolves it, its sha256
against the pinned one), each with its `_edgetpu` build: present and compiled for the Edge TPU,
or missing (then the CPU runs it, and where to compile one is said)."""
import os

from edge.doctor.findings import FAIL, OK, WARN, Finding, one_line, quiet_logging

COMPILE_HINT = ("run `maskdet-convert compile {cpu}` on an x86-64 Debian-family machine (the "
                "only place edgetpu_compiler runs) and copy {twin} beside the CPU model in {folder}")


def _sha(path):
    from edge.inference.model_meta import sha256_of

    return sha256_of(path)


def _compiled(path):
    """True when a .tflite file holds the Edge TPU custom op (what edgetpu_compiler writes)."""
    try:
        with open(path, "rb") as handle:
            return b"edgetpu-custom-op" in handle.read()
    except OSError:
        return False


def _twin_finding(name, cpu_path, detail, data, coral_present, accelerator):
    """The part of a model's finding about its `_edgetpu` build."""
    from edge.inference.accelerator import edgetpu_twin

    twin = edgetpu_twin(cpu_path)
    folder = os.path.dirname(os.path.abspath(cpu_path))
    hint = COMPILE_HINT.format(cpu=os.path.basename(cpu_path), twin=os.path.basename(twin),
                               folder=folder)
    if os.path.isfile(twin):
        sha = _sha(twin)
        data["edgetpu_sha256"] = sha
        text = f"{detail}; Edge TPU build {os.path.basename(twin)} (sha256 {sha[:12]}…)"
        if not _compiled(twin):
            return Finding(name, WARN, f"{text} holds no edgetpu-custom-op: it is not compiled for "
                           "the Edge TPU (it would run on the CPU under the delegate)", hint, data)
        if accelerator.mode == "cpu":
            text += " (not used: accelerator.mode cpu)"
        return Finding(name, OK, text, data=data)
    text = f"{detail}; no Edge TPU build {os.path.basename(twin)}: the CPU runs it"
    if accelerator.mode == "cpu":
        return Finding(name, OK, text + " (accelerator.mode cpu)", data=data)
    if accelerator.mode == "edgetpu" and accelerator.require:
        return Finding(name, FAIL, text + "; `run` fails: the Edge TPU is required", hint, data)
    if accelerator.mode == "edgetpu" or coral_present:
        return Finding(name, WARN, text + (" although a Coral is here" if coral_present else ""),
                       hint, data)
    return Finding(name, OK, text, data=data)


def check_classifier_model(config, coral_present=False):
    """The classifier: its metadata, its model's sha256 against the metadata, that it opens and
    runs on the CPU, and its `_edgetpu` build (present and compiled, or missing: the CPU is
    used)."""
    from edge.config.checks import check_classifier
    from edge.errors import ConfigError, MaskdetError
    from edge.inference.accelerator import AcceleratorSettings
    from edge.inference.model_meta import load_classifier_meta
    from edge.paths import default_classifier

    name = "classifier model"
    meta_path = config.classifier.model or default_classifier()
    try:
        meta = load_classifier_meta(meta_path)
    except MaskdetError as exc:
        return Finding(name, FAIL, one_line(exc), "copy models/ again (install.sh does), or fix "
                       "classifier.model")
    if not os.path.isfile(meta.model_path):
        return Finding(name, FAIL, f"{meta.model_path} (named by {meta.path}) does not exist",
                       "copy models/ again (install.sh does)")
    sha = _sha(meta.model_path)
    data = {"metadata": meta.path, "model": meta.model_path, "sha256": sha}
    if sha != meta.sha256:
        return Finding(name, FAIL, f"{meta.model_path} has sha256 {sha[:12]}…, its metadata "
                       f"{os.path.basename(meta.path)} says {meta.sha256[:12]}…: not the model the "
                       "metadata describes", "copy the model and its metadata again, together", data)
    try:
        with quiet_logging():
            check_classifier(config, "config", AcceleratorSettings(mode="cpu", threads=1))
    except ConfigError as exc:
        return Finding(name, FAIL, one_line(exc).split(": ", 2)[-1], "copy models/ again "
                       "(install.sh does)", data)
    second = meta.second_opinion
    pair = "" if second is None else (f", with its second opinion {second.model_file} (sha256 "
                                      f"{second.sha256[:12]}…, on the CPU)")
    detail = (f"{os.path.basename(meta.model_path)} sha256 {sha[:12]}… matches "
              f"{os.path.basename(meta.path)}{pair}; opens and runs on the CPU")
    return _twin_finding(name, meta.model_path, detail, data, coral_present, config.accelerator)


def check_detector_model(config, coral_present=False):
    """The face detector's file: resolved as `run` resolves it, its sha256 against the pinned one
    of `maskdet models` (for a catalogue file), and its `_edgetpu` build for a TFLite detector."""
    from edge.errors import MaskdetError
    from edge.inference.detectors import default_model_key
    from edge.inference.fetch import CATALOG, resolve

    name = "detector model"
    settings = config.detector
    try:
        model = settings.model or default_model_key(settings)
        if not model:
            return Finding(name, FAIL, f"detector type {settings.type} has no default model",
                           "give its file in detector.model")
        path = resolve(model)
    except MaskdetError as exc:
        return Finding(name, FAIL, one_line(exc), "`maskdet models fetch` (install.sh does), "
                       "or fix detector.model")
    sha = _sha(path)
    data = {"model": path, "sha256": sha}
    pinned = CATALOG[model].sha256 if model in CATALOG else None
    if pinned and sha != pinned:
        return Finding(name, FAIL, f"{path} has sha256 {sha[:12]}…, not the pinned {pinned[:12]}… "
                       f"of `{model}`", f"delete it and `maskdet models fetch {model}`", data)
    detail = f"{settings.type}: {path} (sha256 {sha[:12]}…{', as pinned' if pinned else ''})"
    if not path.endswith(".tflite"):
        return Finding(name, OK, detail + "; runs on the CPU (not a TFLite model: no Edge TPU "
                       "build)", data=data)
    return _twin_finding(name, path, detail, data, coral_present, config.accelerator)
