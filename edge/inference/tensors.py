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
    """uint8 pixels (an HxWxC image or a batch of them) -> the input tensor's dtype, where the
    model expects (pixel - mean) / std.

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
        flat = pixels.reshape(-1, *pixels.shape[-2:]) if pixels.ndim > 3 else pixels  # a batch
        return cv2.LUT(flat, table.view(np.uint8)).view(table.dtype).reshape(pixels.shape)
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


def output_step(details):
    """One quantization step of an output (its scale); 1e-6 for a float output."""
    scale = float(details["quantization"][0])
    return scale if scale else 1e-6


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


def resize_batch(interpreter, size):
    """Make the input an [size, H, W, C] batch, re-allocating the tensors only when its batch
    dimension is another (a plain TFLite interpreter: a compiled Edge TPU model is static)."""
    details = input_details(interpreter)
    shape = [int(v) for v in details["shape"]]
    if shape[0] != size:
        interpreter.resize_tensor_input(details["index"], [size] + shape[1:])
        interpreter.allocate_tensors()


def set_images(interpreter, images, mean, std):
    """Put N HxWx3 uint8 images into the [N, H, W, 3] input tensor, quantized in one pass."""
    details = input_details(interpreter)
    interpreter.set_tensor(details["index"], quantize_pixels(np.stack(images), details, mean, std))


def rows(interpreter, details):
    """The dequantized output tensor described by `details`: one row per image of the batch."""
    return dequantize(interpreter.get_tensor(details["index"]), details)


def run_images(interpreter, images, mean, std):
    """One invoke over N HxWx3 uint8 images (the input resized to N first when it is not);
    returns the dequantized first output, one row per image."""
    resize_batch(interpreter, len(images))
    set_images(interpreter, images, mean, std)
    interpreter.invoke()
    return rows(interpreter, interpreter.get_output_details()[0])
