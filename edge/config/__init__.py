"""The daemon's configuration: the strict schema (`schema.py`) and the YAML loader (`loader.py`)."""
from edge.config.schema import DEFAULT_PATH, Config, load_config

__all__ = ["DEFAULT_PATH", "Config", "load_config"]
