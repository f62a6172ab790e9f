"""Ways to get P(no mask) for a list of face images from a Keras model, a TFLite file or the
published baseline. Each scorer is a function: list of RGB uint8 images -> float array."""
import numpy as np

from edge.inference import tensors
from edge.inference.preprocess import PIXEL_MEAN, PIXEL_STD, normalize, resize_square
from edge.inference.runtime import find_runtime, open_interpreter

from .evaluation_sets import batches_at


def keras_scorer(model, no_mask_index=1):
    """Score with a Keras model that takes normalised pixels (any batch size)."""
    size = int(model.input_shape[1])

    def score(images):
        out = []
        for batch in batches_at(images, size):
            for image in batch:  # the export model has a static batch of one
                out.append(model(normalize(image[np.newaxis]), training=False).numpy()[0])
        return np.array(out)[:, no_mask_index]

    return score


def tflite_scorer(model_path, no_mask_index=1, runtime=None, num_threads=None):
    """Score with a TFLite file through the same code the Pi runs (edge.inference.tensors)."""
    interpreter = open_interpreter(model_path, runtime or find_runtime(), num_threads)
    height, _ = tensors.input_size(interpreter)

    def score(images):
        return np.array([
            tensors.run_image(interpreter, resize_square(im, height), PIXEL_MEAN, PIXEL_STD)
            [no_mask_index] for im in images])

    return score
