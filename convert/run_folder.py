"""The one definition of a training run's folder and of the model metadata it produces: file
names, evaluation set names, plot names, and the metadata's schema and portable paths.

A run folder holds, after `train`: `train.json` (summary), `split.json` (which image went where),
`classifier.keras`, `training_curves.png`; after `quantize`: `<name>_float.tflite`,
`<name>_int8.tflite`, `<name>.json` (the metadata), `eval_<tag>.json`, `curves_<tag>.png` and
`confusion_<tag>_<set>.png` per evaluation set.
"""
import json
import os

from edge.errors import ModelError
from edge.paths import shared_dir

TRAIN_SUMMARY = "train.json"
SPLIT = "split.json"
KERAS_MODEL = "classifier.keras"
TRAINING_CURVES = "training_curves.png"

VALIDATION = "validation"
REAL_WORLD = "real-world scenes"
HELD_OUT_SCENES = "held-out scenes"  # the training scenes' held-out photos (masks below the nose)

META_SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edge",
                           "inference", "schemas", "model_meta.json")


def path(run_dir, file_name):
    """A file of the run folder."""
    return os.path.join(run_dir, file_name)


def float_model(name):
    """File name of the float TFLite model."""
    return f"{name}_float.tflite"


def int8_model(name):
    """File name of the full-integer TFLite model."""
    return f"{name}_int8.tflite"


def metadata_file(name):
    """File name of the model metadata."""
    return f"{name}.json"


def eval_report(tag):
    """File name of the metric report of one model kind (`float`, `int8`, `keras` ...)."""
    return f"eval_{tag}.json"


def curves_plot(tag):
    """File name of the ROC / PR curves of one model kind."""
    return f"curves_{tag}.png"


def confusion_plot(tag, set_name):
    """File name of the confusion matrix of one model kind on one evaluation set."""
    return f"confusion_{tag}_{set_name.replace(' ', '_').replace('-', '_')}.png"


CARD_PLOTS = (TRAINING_CURVES, curves_plot("int8"), confusion_plot("int8", VALIDATION),
              confusion_plot("int8", REAL_WORLD))


def portable_path(p):
    """A path as it may appear in committed metadata: relative to the folder that holds both the
    repository and the shared data (`shared/data/faces`, `runs/scene_faces`), never absolute."""
    if not os.path.isabs(p):
        return p
    workspace = os.path.dirname(shared_dir())
    relative = os.path.relpath(p, workspace)
    if relative.startswith(".."):
        return os.path.join(*p.split(os.sep)[-2:])
    return relative


def absolute_paths(value, where="metadata"):
    """Every absolute path string inside a JSON value, as (key path, value) pairs."""
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in absolute_paths(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in absolute_paths(v, f"{where}[{i}]")]
    if isinstance(value, str) and os.path.isabs(value):
        return [(where, value)]
    return []


def validate_metadata(meta, file_name="metadata"):
    """ModelError when the metadata breaks its JSON Schema or holds an absolute path."""
    import jsonschema

    with open(META_SCHEMA, encoding="utf-8") as handle:
        schema = json.load(handle)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(meta), key=str)
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "the top level"
        raise ModelError(f"{file_name}: {where}: {first.message} ({len(errors)} schema error(s); "
                         f"schema {META_SCHEMA})")
    found = absolute_paths(meta)
    if found:
        raise ModelError(f"{file_name}: {found[0][0]} is an absolute path ({found[0][1]}); "
                         "metadata must not hold paths of the machine that built it")


def read_metadata(run_dir, name="mask_classifier"):
    """The metadata of a quantized run folder (or of a published `models/`), or DataError
    saying what to run."""
    from edge.errors import DataError

    file_path = path(run_dir, metadata_file(name))
    try:
        with open(file_path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {file_path} ({exc}): quantize {run_dir} first "
                        "(`maskdet-convert quantize --run ...`)") from exc


def write_metadata(meta, file_path):
    """Validate, then write the metadata JSON."""
    validate_metadata(meta, file_path)
    with open(file_path, "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
