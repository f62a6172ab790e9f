"""Ways to get P(no mask) for a list of face images from a Keras model, a TFLite file or the
published baseline. Each scorer is a function: list of RGB uint8 images -> float array.

Every classifier this pipeline makes has `mask` as its first output; P(no mask) is the sum of
the others (`no_mask_of`): the one `no_mask` output of a two-class model, both kinds of no mask
of a three-class one (dataset.LABELS)."""
import numpy as np

from edge.inference import tensors
from edge.inference.preprocess import PIXEL_MEAN, PIXEL_STD, normalize, resize_square
from edge.inference.runtime import find_runtime, open_interpreter

from .evaluation_sets import batches_at


def no_mask_of(outputs):
    """P(no mask) of each row of class scores (mask first): the sum of every output but mask."""
    outputs = np.asarray(outputs, np.float64)
    return outputs[..., 1:].sum(axis=-1)


def keras_scorer(model):
    """Score with a Keras model that takes normalised pixels (any batch size)."""
    size = int(model.input_shape[1])

    def score(images):
        out = []
        for batch in batches_at(images, size):
            for image in batch:  # the export model has a static batch of one
                out.append(model(normalize(image[np.newaxis]), training=False).numpy()[0])
        return no_mask_of(out)

    return score


def tflite_scorer(model_path, runtime=None, num_threads=None):
    """Score with a TFLite file through the same code the Pi runs (edge.inference.tensors)."""
    interpreter = open_interpreter(model_path, runtime or find_runtime(), num_threads)
    height, _ = tensors.input_size(interpreter)

    def score(images):
        return np.array([
            no_mask_of(tensors.run_image(interpreter, resize_square(im, height), PIXEL_MEAN,
                                         PIXEL_STD)) for im in images])

    return score
