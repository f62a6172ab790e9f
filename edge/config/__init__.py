"""The daemon's configuration: the strict schema (`schema.py`), the YAML loader (`loader.py`) and
the start checks (`checks.py`: `check_config`, what `maskdet check-config` and `maskdet run` run).

The names below are imported on first use, so that `edge.config.loader` alone (which the
monitor uses for its own config) does not pull in the schema, and with it the inference core."""
import importlib

_EXPORTS = {"DEFAULT_PATH": "edge.config.schema", "Config": "edge.config.schema",
            "load_config": "edge.config.schema", "check_config": "edge.config.checks"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edge.config' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
