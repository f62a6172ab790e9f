"""Small pure functions over a TFLite interpreter's input and output tensors.

Normalisation is folded into quantization: an image of uint8 pixels is turned straight into the
model's quantized input, and an output is dequantized with its own scale and zero point.
"""
import functools

import cv2
import numpy as np

from edge.errors import ModelError


def input_details(interpreter):
    """The details of the model's single input tensor."""
    details = interpreter.get_input_details()
    if len(details) != 1:
        raise ModelError(f"expected a model with one input tensor, found {len(details)}")
    return details[0]


def input_size(interpreter):
    """(height, width) of a [1, H, W, 3] image input."""
    shape = input_details(interpreter)["shape"]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise ModelError(f"expected an image input of shape [1, H, W, 3], found {list(shape)}")
    return int(shape[1]), int(shape[2])


def quantize_pixels(pixels, details, mean, std):
    """uint8 pixels -> the input tensor's dtype, where the model expects (pixel - mean) / std.

    When the quantization already equals the normalisation (scale * std == 1 and zero point ==
    mean) the pixels are passed through untouched, as pycoral's adapters do.
    """
    dtype = details["dtype"]
    scale, zero_point = details["quantization"]
    if dtype == np.float32 or scale == 0:
        return ((np.asarray(pixels, np.float32) - mean) / std).astype(np.float32)
    if dtype == np.uint8 and abs(scale * std - 1) < 1e-5 and abs(mean - zero_point) < 1e-5:
        return np.asarray(pixels, np.uint8)
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8:  # one table lookup instead of float maths per pixel
        table = _pixel_table(np.dtype(dtype).name, float(scale), int(zero_point), float(mean), float(std))
        return cv2.LUT(pixels, table.view(np.uint8)).view(table.dtype).reshape(pixels.shape)
    info = np.iinfo(dtype)
    real = (pixels.astype(np.float32) - mean) / std
    return np.clip(np.round(real / scale + zero_point), info.min, info.max).astype(dtype)


@functools.lru_cache(maxsize=16)
def _pixel_table(dtype_name, scale, zero_point, mean, std):
    """The quantized value of each of the 256 pixel values."""
    dtype = np.dtype(dtype_name)
    info = np.iinfo(dtype)
    real = (np.arange(256, dtype=np.float32) - mean) / std
    return np.clip(np.round(real / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values, details):
    """A raw output tensor -> float32, using the tensor's own scale and zero point."""
    scale, zero_point = details["quantization"]
    values = np.asarray(values)
    if scale == 0:
        return values.astype(np.float32)
    return (values.astype(np.float32) - zero_point) * scale


def set_image(interpreter, pixels, mean, std):
    """Put one HxWx3 uint8 image into the input tensor, quantized as the model expects."""
    details = input_details(interpreter)
    interpreter.set_tensor(details["index"], quantize_pixels(pixels, details, mean, std)[np.newaxis])


def output(interpreter, details):
    """The dequantized output tensor described by `details`, batch dimension off."""
    return dequantize(interpreter.get_tensor(details["index"]), details)[0]


def run_image(interpreter, pixels, mean, std):
    """Invoke on one HxWx3 uint8 image; returns the dequantized first output, batch dimension off."""
    set_image(interpreter, pixels, mean, std)
    interpreter.invoke()
    return output(interpreter, interpreter.get_output_details()[0])
