"""`maskdet-convert detector-int8`: YuNet (ONNX) rebuilt in Keras from its weights, proved equal
to onnxruntime on real photos, and quantized to a full-integer TFLite model for the Edge TPU.

The rebuild maps each ONNX node to a Keras layer in NHWC at a fixed input size: Conv (weights
OIHW -> HWIO, or the depthwise layout when group == channels; ONNX pads that TensorFlow's `same`
does not reproduce go into a ZeroPadding2D), BatchNormalization, Relu, Sigmoid, MaxPool, Add,
Concat, Resize / Upsample (nearest, by an integer factor: TensorFlow's ResizeNearestNeighbor
with half_pixel_centers=False, which old Edge TPU compilers accept; Keras 3's UpSampling2D
repeats instead, which converts to RESHAPE / TILE over 5-D tensors, not Edge TPU ops), and the
heads' NCHW -> NHWC Transpose and Reshape. The
deployed model drops the landmarks (the decoder does not use them) and puts sigmoid(cls) and
sigmoid(obj) of each stride side by side, so that every output is found by its shape.
"""
import contextlib
import json
import logging
import os
import sys

import numpy as np

from edge.errors import ModelError
from edge.inference.detectors.yunet import STRIDES, any_size_model
from edge.inference.detectors.yunet_int8 import INPUT_HEIGHT, INPUT_WIDTH, MODEL_FILE, fit_input
from edge.inference.fetch import CATALOG, fetch
from edge.inference.geometry import shrink
from edge.inference.images import read_image
from edge.inference.model_meta import sha256_of
from edge.paths import shared_path

from .progress import progress
from .run_folder import portable_path

log = logging.getLogger(__name__)

CALIBRATION_COUNT = 200
# The calibration photos: scenes_more/ilc2021 (never data/scenes, the held-out evaluation set, nor
# scenes_more/macwin, on which the detector's recall is measured).
CALIBRATION_FOLDER = ("data", "scenes_more", "ilc2021", "images")
CHECK_PHOTOS = 6  # photos (besides calibration) on which Keras is compared with onnxruntime
MAX_RAW_DIFFERENCE = 1e-4  # largest raw-output difference Keras vs onnxruntime accepted
SOURCE = ("ShiqiYu/libfacedetection.train @ 0047ac2, onnx/yunet_s_640_640.onnx (the same bytes as "
          "opencv/opencv_zoo models/face_detection_yunet/face_detection_yunet_2023mar.onnx)")
LICENCE = ("MIT (opencv_zoo models/face_detection_yunet/LICENSE; the shared README gives "
           "MIT / Apache-2.0)")


# ---- the ONNX graph as Keras layers

def onnx_graph(onnx_path):
    """(graph, {initializer or Constant name: numpy array}) of an ONNX file."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(os.fspath(onnx_path))
    except Exception as exc:  # protobuf's DecodeError, OSError ...
        raise ModelError(f"{onnx_path} cannot be read as an ONNX model: {exc}") from exc
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            weights[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return model.graph, weights


def _attrs(node):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _nearest_upsample_layer():
    """A Keras layer that enlarges by an integer factor with TensorFlow's nearest-neighbour
    resize, corners and centres off (ONNX's asymmetric / floor nearest)."""
    import keras
    import tensorflow as tf

    class NearestUpsample(keras.layers.Layer):
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = int(factor)

        def call(self, x):
            size = (x.shape[1] * self.factor, x.shape[2] * self.factor)
            return tf.raw_ops.ResizeNearestNeighbor(images=x, size=size, align_corners=False,
                                                    half_pixel_centers=False)

        def compute_output_shape(self, shape):
            return (shape[0], shape[1] * self.factor, shape[2] * self.factor, shape[3])

    return NearestUpsample


class _Rebuild:
    """Walks the ONNX nodes in order, keeping each tensor as (Keras tensor, layout): `nchw` for
    an image tensor ONNX holds as NCHW and Keras as NHWC, `same` once both hold it alike."""

    def __init__(self, weights):
        import keras

        self.keras = keras
        self.weights = weights
        self.tensors = {}
        self.upsample = _nearest_upsample_layer()

    def run(self, graph, input_tensor):
        self.tensors[graph.input[0].name] = (input_tensor, "nchw")
        for node in graph.node:
            if node.op_type == "Constant":
                continue
            build = getattr(self, "_" + node.op_type, None)
            if build is None:
                raise ModelError(f"ONNX op {node.op_type} ({node.name}) has no Keras mapping here")
            self.tensors[node.output[0]] = build(node, _attrs(node))
        return self.tensors

    def _input(self, node, index=0, layout=None):
        tensor, have = self.tensors[node.input[index]]
        if layout and have != layout:
            raise ModelError(f"{node.op_type} {node.name}: its input is {have}, not {layout}")
        return tensor, have

    def _apply(self, layer, x, weights=None):
        y = layer(x)
        if weights is not None:
            layer.set_weights(weights)
        return y

    def _padded(self, node, x, pads, kernel, strides):
        """(x, padding) for a conv or pool: `same` where TensorFlow pads exactly as ONNX,
        `valid` after a ZeroPadding2D otherwise."""
        top, left, bottom, right = pads
        if not any(pads):
            return x, "valid"
        if tuple(strides) == (1, 1) and (top, left) == (bottom, right) == \
                ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2) and kernel[0] % 2 and kernel[1] % 2:
            return x, "same"
        layer = self.keras.layers.ZeroPadding2D(((top, bottom), (left, right)), name=node.name + "_pad")
        return layer(x), "valid"

    def _Conv(self, node, a):
        x, _ = self._input(node, layout="nchw")
        w = self.weights[node.input[1]]
        out_ch, per_group, kh, kw = w.shape
        bias = self.weights[node.input[2]] if len(node.input) > 2 else np.zeros(out_ch, np.float32)
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise ModelError(f"Conv {node.name}: dilations {a['dilations']} are not mapped")
        strides = tuple(a.get("strides", (1, 1)))
        x, padding = self._padded(node, x, a.get("pads", (0, 0, 0, 0)), (kh, kw), strides)
        group, channels = a.get("group", 1), int(x.shape[-1])
        layers = self.keras.layers
        if group == 1:
            layer = layers.Conv2D(out_ch, (kh, kw), strides, padding, name=node.name)
            return self._apply(layer, x, [w.transpose(2, 3, 1, 0), bias]), "nchw"
        if group == channels == out_ch and per_group == 1:
            layer = layers.DepthwiseConv2D((kh, kw), strides, padding, name=node.name)
            return self._apply(layer, x, [w.transpose(2, 3, 0, 1), bias]), "nchw"
        raise ModelError(f"Conv {node.name}: group {group} over {channels} channels is neither a "
                         "plain nor a depthwise convolution")

    def _BatchNormalization(self, node, a):
        x, _ = self._input(node, layout="nchw")
        gamma, beta, mean, var = (self.weights[n] for n in node.input[1:5])
        layer = self.keras.layers.BatchNormalization(epsilon=a.get("epsilon", 1e-5), name=node.name)
        return self._apply(layer, x, [gamma, beta, mean, var]), "nchw"

    def _Relu(self, node, a):
        x, layout = self._input(node)
        return self.keras.layers.ReLU(name=node.name)(x), layout

    def _Sigmoid(self, node, a):
        x, layout = self._input(node)
        return self.keras.layers.Activation("sigmoid", name=node.name)(x), layout

    def _MaxPool(self, node, a):
        x, _ = self._input(node, layout="nchw")
        kernel, strides = tuple(a["kernel_shape"]), tuple(a.get("strides", (1, 1)))
        if a.get("ceil_mode", 0) or any(a.get("pads", (0, 0, 0, 0))):
            raise ModelError(f"MaxPool {node.name}: padding and ceil_mode are not mapped")
        return self.keras.layers.MaxPooling2D(kernel, strides, "valid", name=node.name)(x), "nchw"

    def _Resize(self, node, a):
        x, _ = self._input(node, layout="nchw")
        if a.get("mode", b"nearest") != b"nearest" or \
                a.get("coordinate_transformation_mode", b"asymmetric") != b"asymmetric" or \
                a.get("nearest_mode", b"floor") != b"floor":
            raise ModelError(f"Resize {node.name}: only nearest / asymmetric / floor is mapped ({a})")
        scales = self.weights.get(node.input[2]) if len(node.input) > 2 else None
        return self._upsampled(node, x, scales), "nchw"

    def _Upsample(self, node, a):
        x, _ = self._input(node, layout="nchw")
        if a.get("mode", b"nearest") != b"nearest":
            raise ModelError(f"Upsample {node.name}: only nearest is mapped")
        scales = self.weights.get(node.input[1]) if len(node.input) > 1 else a.get("scales")
        return self._upsampled(node, x, scales), "nchw"

    def _upsampled(self, node, x, scales):
        scales = np.asarray(scales if scales is not None else [], np.float64)
        if scales.shape != (4,) or tuple(scales[:2]) != (1, 1) or scales[2] != scales[3] \
                or scales[2] != int(scales[2]) or scales[2] < 1:
            raise ModelError(f"{node.op_type} {node.name}: scales {scales.tolist()} are not one "
                             "integer factor for height and width")
        return self.upsample(int(scales[2]), name=node.name)(x)

    def _Add(self, node, a):
        (x, layout), (y, other) = self._input(node, 0), self._input(node, 1)
        if layout != other:
            raise ModelError(f"Add {node.name}: inputs in different layouts")
        return self.keras.layers.Add(name=node.name)([x, y]), layout

    def _Concat(self, node, a):
        inputs = [self._input(node, i) for i in range(len(node.input))]
        layouts = {layout for _, layout in inputs}
        if len(layouts) != 1:
            raise ModelError(f"Concat {node.name}: inputs in different layouts")
        layout, axis = layouts.pop(), a["axis"]
        if layout == "nchw":
            axis = {1: -1, 2: 1, 3: 2, -3: -1, -2: 1, -1: 2}[axis]
        return self.keras.layers.Concatenate(axis=axis, name=node.name)([t for t, _ in inputs]), layout

    def _Transpose(self, node, a):
        x, _ = self._input(node, layout="nchw")
        if tuple(a["perm"]) != (0, 2, 3, 1):
            raise ModelError(f"Transpose {node.name}: only NCHW -> NHWC is mapped, not {a['perm']}")
        return x, "same"  # Keras holds it as NHWC already

    def _Reshape(self, node, a):
        x, _ = self._input(node, layout="same")
        shape = [int(v) for v in self.weights[node.input[1]]]
        if shape[0] != 1:
            raise ModelError(f"Reshape {node.name}: to {shape}, not a batch of one")
        return self.keras.layers.Reshape(tuple(shape[1:]), name=node.name)(x), "same"


def build_keras(onnx_path, width=INPUT_WIDTH, height=INPUT_HEIGHT):
    """(Keras model, output names) of the ONNX YuNet at a fixed height x width BGR input of 0-255
    floats: every ONNX output (cls, obj, bbox, kps per stride), in the file's order."""
    import keras

    if width % 32 or height % 32:
        raise ModelError(f"YuNet's input must be a multiple of 32, not {width}x{height}")
    graph, weights = onnx_graph(onnx_path)
    image = keras.Input((height, width, 3), batch_size=1, name="image_bgr")
    tensors = _Rebuild(weights).run(graph, image)
    names = [o.name for o in graph.output]
    return keras.Model(image, [tensors[n][0] for n in names], name="yunet_raw"), names


def deployed_model(raw, names):
    """The model quantized: per stride scores_S (sigmoid(cls), sigmoid(obj)) and bbox_S."""
    import keras

    outputs = dict(zip(names, raw.outputs))
    result = []
    for stride in STRIDES:
        result.append(keras.layers.Concatenate(axis=-1, name=f"scores_{stride}")(
            [outputs[f"cls_{stride}"], outputs[f"obj_{stride}"]]))
        result.append(outputs[f"bbox_{stride}"])
    return keras.Model(raw.input, result, name="yunet_int8")


# ---- inputs, as at run time

def prepared(image_bgr, width=INPUT_WIDTH, height=INPUT_HEIGHT):
    """The model's input for a photo, as the daemon makes it: shrunk to the detect width first
    (DownscaledDetector), then fitted and padded (yunet_int8.fit_input)."""
    frame_h, frame_w = image_bgr.shape[:2]
    if frame_w > width:
        image_bgr = shrink(image_bgr, width, max(1, round(frame_h * width / frame_w)))
    return fit_input(image_bgr, width, height)[0]


def calibration_photos(count=CALIBRATION_COUNT, folder=None):
    """`count` photos spread evenly over the sorted names of the calibration folder."""
    folder = folder or shared_path(*CALIBRATION_FOLDER)
    if not os.path.isdir(folder):
        raise ModelError(f"calibration folder {folder} does not exist: set MASKDET_SHARED to the "
                         "shared data folder, or give --calibration-folder")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")))
    if len(names) < count:
        raise ModelError(f"{folder} holds {len(names)} photos, fewer than the {count} asked for")
    picks = np.linspace(0, len(names) - 1, count).round().astype(int)
    return [os.path.join(folder, names[i]) for i in picks]


def check_photos(calibration):
    """Photos of the same folder that calibration did not use, and the shared four-faces photo."""
    folder = os.path.dirname(calibration[0])
    used = set(calibration)
    others = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
              if os.path.join(folder, n) not in used][::97][:CHECK_PHOTOS]
    four_faces = shared_path("data", "images", "four_faces.jpg")
    return others + ([four_faces] if os.path.isfile(four_faces) else [])


# ---- the equality check

def onnxruntime_outputs(onnx_path, images_bgr):
    """onnxruntime's raw outputs ({name: array}) of the ONNX file for each uint8 BGR image."""
    import onnxruntime

    session = onnxruntime.InferenceSession(any_size_model(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(None, {name: im.transpose(2, 0, 1)[None].astype(np.float32)})))
            for im in images_bgr]


def keras_outputs(raw, names, images_bgr):
    """The Keras rebuild's raw outputs ({name: array}) for each uint8 BGR image."""
    return [dict(zip(names, (t.numpy() for t in raw(im[None].astype(np.float32), training=False))))
            for im in images_bgr]


def compare_raw(reference, candidate):
    """{output name: largest absolute difference} over the images."""
    return {name: float(max(np.max(np.abs(np.asarray(r[name]) - np.asarray(c[name])))
                            for r, c in zip(reference, candidate)))
            for name in reference[0]}


# ---- quantization

def convert_int8(model, calibration_inputs):
    """The Keras model as a full-integer TFLite flatbuffer: uint8 input (BGR pixels as they are),
    int8 ops and int8 outputs (dequantized by the run-time wrapper)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for image in progress(calibration_inputs, desc="calibrate"):
            yield [image[None].astype(np.float32)]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.int8
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints the exported signature
        return converter.convert()


def resize_options(tflite_path):
    """[{op, align_corners, half_pixel_centers}] of each RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR
    op in a .tflite file, read from the flatbuffer."""
    import tflite

    with open(tflite_path, "rb") as handle:
        model = tflite.Model.GetRootAsModel(handle.read(), 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    graph, found = model.Subgraphs(0), []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        if name not in ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"):
            continue
        options = (tflite.ResizeNearestNeighborOptions if name == "RESIZE_NEAREST_NEIGHBOR"
                   else tflite.ResizeBilinearOptions)()
        table = op.BuiltinOptions()
        options.Init(table.Bytes, table.Pos)
        found.append({"op": name, "align_corners": bool(options.AlignCorners()),
                      "half_pixel_centers": bool(options.HalfPixelCenters())})
    return found


def tensor_details(tflite_path):
    """(input, outputs) quantization and shapes of the int8 model, read by the run-time's
    interpreter."""
    from edge.inference.runtime import open_interpreter

    interpreter = open_interpreter(tflite_path)

    def describe(d):
        scale, zero_point = d["quantization"]
        return {"name": d["name"], "shape": [int(v) for v in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}

    return describe(interpreter.get_input_details()[0]), \
        [describe(d) for d in interpreter.get_output_details()]


def tool_versions():
    """Versions of the tools that made the model."""
    import platform

    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


# ---- the whole command

def source_model(onnx_path=None):
    """(path, sha256) of the YuNet ONNX file: the given one, or the pinned `yunet` of `maskdet
    models` (fetched into the cache when absent)."""
    path = onnx_path or fetch("yunet")
    sha = sha256_of(path)
    if sha != CATALOG["yunet"].sha256:
        log.warning("%s is not the pinned face_detection_yunet_2023mar.onnx (sha256 %s)", path, sha)
    return path, sha


def check_rebuild(onnx_path, raw, names, photos, width=INPUT_WIDTH, height=INPUT_HEIGHT):
    """{output name: largest difference} of the Keras rebuild against onnxruntime on the photos,
    prepared as at run time; ModelError when one exceeds MAX_RAW_DIFFERENCE."""
    inputs = [prepared(read_image(p), width, height) for p in photos]
    differences = compare_raw(onnxruntime_outputs(onnx_path, inputs), keras_outputs(raw, names, inputs))
    worst = max(differences.values())
    log.info("Keras against onnxruntime on %d photos: largest raw difference %.2e", len(photos), worst)
    if worst > MAX_RAW_DIFFERENCE:
        raise ModelError(f"the Keras rebuild differs from onnxruntime by {worst:.2e} (> "
                         f"{MAX_RAW_DIFFERENCE:g}): {differences}")
    return differences


def write_int8(raw, names, calibration, model_path, width=INPUT_WIDTH, height=INPUT_HEIGHT):
    """Quantize on the calibration photos and write the model; its resize ops, checked to have
    neither half-pixel centres nor aligned corners (ModelError otherwise)."""
    inputs = [prepared(read_image(p), width, height) for p in progress(calibration, desc="read")]
    log.info("quantizing on %d calibration photos", len(inputs))
    flatbuffer = convert_int8(deployed_model(raw, names), inputs)
    os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
    with open(model_path, "wb") as handle:
        handle.write(flatbuffer)
    resizes = resize_options(model_path)
    if any(r["half_pixel_centers"] or r["align_corners"] for r in resizes):
        raise ModelError(f"{model_path}: a resize op has half-pixel centres or aligned corners "
                         f"({resizes}), which Edge TPU compilers 14-15 refuse")
    return resizes


def make_detector_int8(out_dir, onnx_path=None, count=CALIBRATION_COUNT, calibration_folder=None,
                       width=INPUT_WIDTH, height=INPUT_HEIGHT):
    """Rebuild, check, quantize and write `out_dir`/face_detection_yunet_int8.tflite and its
    metadata JSON; returns the metadata. ModelError when the rebuild differs from onnxruntime
    or a resize op keeps half-pixel centres."""
    from .edgetpu_rules import check_model

    onnx_path, onnx_sha = source_model(onnx_path)
    log.info("rebuilding %s in Keras at %dx%d", onnx_path, width, height)
    raw, names = build_keras(onnx_path, width, height)
    calibration = calibration_photos(count, calibration_folder)
    checks = check_photos(calibration)
    differences = check_rebuild(onnx_path, raw, names, checks, width, height)
    model_path = os.path.join(out_dir, MODEL_FILE)
    resizes = write_int8(raw, names, calibration, model_path, width, height)
    report = check_model(model_path)
    log.info("wrote %s (%d bytes); Edge TPU rules: %s", model_path, os.path.getsize(model_path),
             "compatible" if report.compatible else "NOT compatible")
    model_input, outputs = tensor_details(model_path)
    meta = {
        "name": os.path.splitext(MODEL_FILE)[0],
        "task": "face detection (YuNet 2023), decoded by edge/inference/detectors/yunet.py",
        "file": MODEL_FILE, "sha256": sha256_of(model_path), "size_bytes": os.path.getsize(model_path),
        "source": {"file": os.path.basename(onnx_path), "sha256": onnx_sha, "origin": SOURCE,
                   "licence": LICENCE},
        "input": dict(model_input, width=width, height=height, color="BGR",
                      preparation="frame shrunk to the detect width, then to fit (never enlarged), "
                                  "padded with black at the bottom and right; pixels 0-255 as they are"),
        "outputs": outputs,
        "keras_vs_onnxruntime": {"photos": [portable_path(p) for p in checks],
                                 "max_abs_difference": differences},
        "calibration": {"count": len(calibration), "choice": "evenly spread over the sorted names",
                        "photos": [portable_path(p) for p in calibration]},
        "resize_ops": resizes,
        "edgetpu_check": {"compatible": report.compatible, "ops": dict(sorted(report.ops.items())),
                          "parameter_bytes": report.parameter_bytes},
        "tools": tool_versions(),
    }
    with open(os.path.join(out_dir, meta["name"] + ".json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
        handle.write("\n")
    return meta
