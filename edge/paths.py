"""Where things are: the repository's models, the shared data set (benchmarks and tests)."""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = "/etc/maskdet/config.yaml"  # the daemon's config file


def models_dir():
    """The shipped models: $MASKDET_MODELS or the repository's `models/`."""
    return os.environ.get("MASKDET_MODELS") or os.path.join(REPO_ROOT, "models")


def shared_dir():
    """The shared data folder: $MASKDET_SHARED or `../shared` beside the repository."""
    return os.path.abspath(os.environ.get("MASKDET_SHARED") or os.path.join(REPO_ROOT, "..", "shared"))


def shared_path(*parts):
    """A path inside the shared data folder (it may not exist)."""
    return os.path.join(shared_dir(), *parts)


def default_classifier():
    """The shipped classifier's metadata: $MASKDET_MODELS/mask_classifier.json or the repo's."""
    return os.path.join(models_dir(), "mask_classifier.json")
