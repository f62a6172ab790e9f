"""The classifier: Keras MobileNetV2 (ImageNet), split for fine-tuning, with a small head."""
import keras

from .dataset import LABELS

# Blocks from this one up (and the last 1x1 conv) are fine-tuned in phase two; the blocks below
# stay frozen, so their output can be computed once per augmented view.
FIRST_TUNED_BLOCK = 9


def split_layer(first_tuned_block):
    """The layer whose output the upper (trainable) part starts from."""
    return f"block_{first_tuned_block - 1}_add"


def build_backbone(size):
    """MobileNetV2 1.0 without its top, for size x size RGB input normalised to [-1, 1]."""
    return keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
                                          weights=None, alpha=1.0)


def split_backbone(backbone, first_tuned_block=FIRST_TUNED_BLOCK):
    """(lower, upper): lower maps images to the split features, upper maps those to the top."""
    features = backbone.get_layer(split_layer(first_tuned_block)).output
    lower = keras.Model(backbone.input, features, name="backbone_lower")
    upper = keras.Model(features, backbone.output, name="backbone_upper")
    return lower, upper


def build_top(outputs=len(LABELS), dropout=0.2):
    """Pooled backbone features (1280) -> softmax over the first `outputs` of LABELS: the part
    phase one trains."""
    return keras.Sequential([keras.layers.Dropout(dropout, name="dropout"),
                             keras.layers.Dense(outputs, activation="softmax", name="scores")],
                            name="top")


def build_head_model(upper, top):
    """Split features -> softmax over LABELS, through the upper backbone, pooling and the top."""
    inputs = keras.Input(shape=upper.input_shape[1:], name="features")
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(upper(inputs))
    return keras.Model(inputs, top(pooled), name="head")


def build_pooled_model(upper):
    """Split features -> pooled 1280-vector of the (frozen) upper backbone, for phase one."""
    inputs = keras.Input(shape=upper.input_shape[1:], name="features")
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(upper(inputs)),
                       name="pooled")


def set_fine_tuning(upper, enabled):
    """Make the upper blocks trainable (batch norm stays frozen, in inference mode) or frozen."""
    upper.trainable = enabled
    for layer in upper.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def build_export_model(lower, head, size):
    """The deployable graph: a static [1, size, size, 3] input of normalised pixels -> scores."""
    inputs = keras.Input(shape=(size, size, 3), batch_size=1, name="image")
    outputs = head(lower(inputs))
    return keras.Model(inputs, outputs, name="mask_classifier")
