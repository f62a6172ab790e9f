"""The daemon's configuration: the strict schema (`schema.py`), the YAML loader (`loader.py`) and
the start checks (`checks.py`: `check_config`, what `maskdet check-config` and `maskdet run` run)."""
from edge.config.schema import DEFAULT_PATH, Config, load_config
from edge.config.checks import check_config  # noqa: E402  (after schema: checks imports it)

__all__ = ["DEFAULT_PATH", "Config", "check_config", "load_config"]
