import numpy as np
import pytest

from edge.inference.tensors import dequantize, quantize_pixels


def details(dtype, scale, zero_point):
    return {"dtype": dtype, "quantization": (scale, zero_point)}


def test_pixels_pass_through_when_quantization_equals_normalisation():
    pixels = np.array([[0, 128, 255]], np.uint8)
    out = quantize_pixels(pixels, details(np.uint8, 1 / 127.5, 127.5), 127.5, 127.5)
    assert out.dtype == np.uint8 and np.array_equal(out, pixels)


def test_pixels_are_requantized_with_the_tensor_scale_and_zero_point():
    pixels = np.array([0, 255], np.uint8)
    out = quantize_pixels(pixels, details(np.int8, 2 / 255, -1), 127.5, 127.5)
    # real -1 -> -1/(2/255) - 1 = -128.5 -> clipped to -128; real 1 -> 127.5 - 1 = 126.5 -> 126
    assert out.dtype == np.int8
    assert out.tolist() == [-128, 126]


def test_float_inputs_get_normalised_floats():
    out = quantize_pixels(np.array([0, 255], np.uint8), details(np.float32, 0.0, 0), 127.5, 127.5)
    assert out.dtype == np.float32 and out.tolist() == pytest.approx([-1.0, 1.0])


def test_dequantize_uses_scale_and_zero_point():
    assert dequantize(np.array([0, 128, 255], np.uint8),
                      details(np.uint8, 1 / 256, 0)).tolist() == pytest.approx([0, 0.5, 255 / 256])
    assert dequantize(np.array([3], np.uint8), details(np.uint8, 0.5, 1)).tolist() == [1.0]
