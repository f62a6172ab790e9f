"""What `maskdet check-config` checks beyond the schema: everything `maskdet run` needs at start
(files, folders, names), so that a config that checks as valid also starts."""
import os

from edge.config.schema import load_config
from edge.errors import ConfigError
from edge.paths import default_classifier


def check_files(config):
    """ConfigError naming the key and file when a file the config needs is missing or unreadable."""
    model = config.classifier.model or default_classifier()
    if not os.access(model, os.R_OK):
        raise ConfigError(f"classifier.model: {model} is missing or unreadable: give the metadata "
                          "JSON of a classifier (models/mask_classifier.json)")


def check_config(path):
    """Load a config and check what `run` needs at start; returns the config or raises ConfigError."""
    config = load_config(path)
    check_files(config)
    return config
