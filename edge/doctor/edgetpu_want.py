"""How much the config wants the Edge TPU, which sets how much anything missing for it matters.

`required` (accelerator.require and the Edge TPU in use: `run` fails without it), `wanted`
(mode edgetpu, or auto with an `_edgetpu` model beside a model: the CPU takes over without it)
or `unused` (mode cpu, or auto without an `_edgetpu` model). Something missing for the Edge TPU
is then FAIL, warn or ok.
"""
import os

from edge.doctor.findings import FAIL, OK, WARN

REQUIRED, WANTED, UNUSED = "required", "wanted", "unused"
MISSING_STATUS = {REQUIRED: FAIL, WANTED: WARN, UNUSED: OK}
INSTALL_CORAL = "sudo systemd/install.sh --coral (USB) or --coral=pcie"


def tpu_want(accelerator, model_paths):
    """How much the config wants the Edge TPU (REQUIRED, WANTED or UNUSED): `accelerator` is its
    AcceleratorSettings, `model_paths` the CPU models it runs (an `_edgetpu` twin beside one
    makes mode auto use the Edge TPU)."""
    from edge.inference.accelerator import edgetpu_twin

    if accelerator.mode == "cpu":
        return UNUSED
    twins = any(p.endswith(".tflite") and os.path.isfile(edgetpu_twin(p)) for p in model_paths if p)
    if accelerator.mode == "auto" and not twins:
        return UNUSED
    return REQUIRED if accelerator.require else WANTED


def when_missing(want, what, fix):
    """A finding's status and fix for something the Edge TPU needs that is not there."""
    status = MISSING_STATUS[want]
    if want == UNUSED:
        return status, f"{what} (the Edge TPU is not used: the models run on the CPU)", None
    return status, what, fix
