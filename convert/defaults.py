"""Where the project's data lives by default: `$MASKDET_SHARED`, else `../shared` beside the repo."""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(REPO_ROOT, "models")


def shared_dir():
    """The shared data folder (it may not exist on a machine without the data)."""
    return os.path.abspath(os.environ.get("MASKDET_SHARED") or os.path.join(REPO_ROOT, "..", "shared"))


def shared_path(*parts):
    """A path inside the shared data folder."""
    return os.path.join(shared_dir(), *parts)


def face_roots():
    """The face-crop folders of the shared data (label folders inside each)."""
    return [shared_path("data", "faces"), shared_path("data", "faces_wild", "rmfd"),
            shared_path("data", "faces_wild", "vyivanov")]


def training_scene_annotations():
    """Annotated scenes whose faces are training data (data/scenes stays held out)."""
    return [shared_path("data", "scenes_more", "ilc2021", "annotations.json"),
            shared_path("data", "scenes_more", "macwin", "annotations.json")]


def real_world_annotations():
    """The held-out real-world scenes: never trained on, used only for evaluation."""
    return shared_path("data", "scenes", "annotations.json")
