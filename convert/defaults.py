"""Which shared data the conversion trains and evaluates on by default."""
import glob

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


# Masks worn below the nose: a seeded part of the ilc2021 photos that show one is held out of
# training, all faces of each photo, as the test set of that kind (issue 12).
BELOW_NOSE_LABEL = "mask_weared_incorrect"
BELOW_NOSE_FRACTION = 0.3


def below_nose_annotations():
    """The annotated scenes whose masks-below-the-nose photos are partly held out."""
    return shared_path("data", "scenes_more", "ilc2021", "annotations.json")


def held_out_scene_photos():
    """{annotations path: image names kept out of training} (the held-out below-nose photos)."""
    from .scene_faces import held_out_photos

    path = below_nose_annotations()
    return {path: held_out_photos(path, BELOW_NOSE_LABEL, BELOW_NOSE_FRACTION)}


def unlabelled_videos():
    """The shared videos whose faces (no label) a distilled student also learns from."""
    return sorted(glob.glob(shared_path("data", "videos", "*.mp4")))
