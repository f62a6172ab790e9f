"""The config check of `maskdet doctor`: the file loads (strict schema) and passes the start
checks that need no hardware. The other checks use the config it returns."""
import os

from edge.doctor.findings import FAIL, OK, Finding, one_line


def check_config(path, service_note=""):
    """Load the config (strict schema) and run the start checks that need no hardware: device
    id, accelerator device name, MQTT password and TLS files. Returns (Finding, config or None):
    the other checks use the config when it loads. `service_note` says what the doctor took from
    the installed unit (MASKDET_MODELS ...), added to the finding."""
    from edge.config.schema import load_config
    from edge.errors import ConfigError

    name = "config"
    note = f" (as the service: {service_note})" if service_note else ""
    try:
        config = load_config(path)
    except ConfigError as exc:
        if not os.path.exists(path):
            return Finding(name, FAIL, f"{path} does not exist{note}", "copy "
                           f"systemd/maskdet.example.yaml to {path} and edit it (sudo "
                           "systemd/install.sh does), or give --config FILE"), None
        return Finding(name, FAIL, one_line(exc) + note, "edit the file; `maskdet check-config "
                       "FILE` names every problem"), None
    problems = start_problems(config, path)
    if problems:
        return Finding(name, FAIL, "; ".join(problems) + note, "edit the file; `maskdet "
                       "check-config FILE` runs every start check"), config
    cameras = ", ".join(c.name for c in config.cameras)
    return Finding(name, OK, f"{path} is valid (cameras {cameras}; detector {config.detector.type}; "
                   f"accelerator {config.accelerator.mode}){note}"), config


def start_problems(config, path):
    """What the start checks that need no hardware (names, accelerator, MQTT) find wrong."""
    from edge.config.checks import check_accelerator, check_mqtt, check_names
    from edge.errors import ConfigError

    problems = []
    for check in (check_names, check_accelerator, check_mqtt):
        try:
            check(config, os.fspath(path))
        except ConfigError as exc:
            problems.append(one_line(exc))
    return problems
