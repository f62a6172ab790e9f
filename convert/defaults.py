"""Which shared data the conversion trains and evaluates on by default."""
from edge.paths import REPO_ROOT, shared_path

MODELS_DIR = f"{REPO_ROOT}/models"


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
