"""The classifier: Keras MobileNetV2 (ImageNet), split for fine-tuning, with a small head."""
import keras

from .dataset import LABELS

# Layers above this one (blocks 13-16 and the last 1x1 conv) are fine-tuned in phase two; the
# layers below stay frozen, so their output can be computed once per augmented view.
SPLIT_LAYER = "block_12_add"


def build_backbone(size):
    """MobileNetV2 1.0 without its top, for size x size RGB input normalised to [-1, 1]."""
    return keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
                                          weights=None, alpha=1.0)


def split_backbone(backbone):
    """(lower, upper): lower maps images to SPLIT_LAYER features, upper maps those to the top."""
    features = backbone.get_layer(SPLIT_LAYER).output
    lower = keras.Model(backbone.input, features, name="backbone_lower")
    upper = keras.Model(features, backbone.output, name="backbone_upper")
    return lower, upper


def build_head_model(upper, dropout=0.2):
    """SPLIT_LAYER features -> softmax over LABELS, through the upper backbone and a small head."""
    inputs = keras.Input(shape=upper.input_shape[1:], name="features")
    x = upper(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="head")


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
