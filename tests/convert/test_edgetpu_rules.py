"""check-edgetpu against known-good models and against models built to break each rule."""
import numpy as np
import pytest

from convert.edgetpu_rules import check_model
from edge.errors import ModelError
from tests.conftest import REPO_ROOT, requires_tensorflow, shared_path


def rules(report):
    return {f.rule for f in report.errors}


def test_googles_reference_mobilenet_is_compatible():
    report = check_model(shared_path("models", "mobilenet_v2_1.0_224_quant.tflite"))
    assert report.compatible, report.findings
    assert report.ops["CONV_2D"] == 36 and report.subgraphs == 1


def test_third_party_cpu_twin_is_compatible_and_its_compiled_twin_is_flagged():
    assert check_model(shared_path("models", "coral_pair", "mask_detector_quant_v2.tflite")).compatible
    compiled = check_model(shared_path("models", "coral_pair", "mask_detector_quant_v2_edgetpu.tflite"))
    assert rules(compiled) == {"already-compiled"}


def test_our_committed_model_is_compatible():
    report = check_model(f"{REPO_ROOT}/models/mask_classifier_int8.tflite")
    assert report.compatible, [str(f) for f in report.findings]
    assert report.parameter_bytes < 6.9 * 2**20


def test_a_file_that_is_not_tflite_is_a_model_error(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(ModelError, match="not a TFLite model"):
        check_model(str(bad))


def _convert(build, int8=True, batch=1):
    requires_tensorflow()
    import keras
    import tensorflow as tf

    inputs = keras.Input(shape=(16, 16, 3), batch_size=batch)
    model = keras.Model(inputs, build(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.random.default_rng(i).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)]
            for i in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def _conv(x):
    import keras

    return keras.layers.Conv2D(4, 3, activation="relu")(x)


def _write(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_a_small_int8_conv_model_is_compatible(tmp_path):
    assert check_model(_write(tmp_path, _convert(_conv), "ok.tflite")).compatible


def test_float_ops_are_reported(tmp_path):
    report = check_model(_write(tmp_path, _convert(_conv, int8=False), "float.tflite"))
    assert "integer-types" in rules(report)
    assert any("FLOAT32" in f.message for f in report.errors)


def test_dynamic_batch_is_reported(tmp_path):
    report = check_model(_write(tmp_path, _convert(_conv, batch=None), "dynamic.tflite"))
    assert "static-shape" in rules(report)


def test_an_unsupported_op_is_reported_with_its_name(tmp_path):
    import keras

    def leaky(x):
        return keras.layers.LeakyReLU(negative_slope=0.1)(_conv(x))

    report = check_model(_write(tmp_path, _convert(leaky), "leaky.tflite"))
    unsupported = [f for f in report.errors if f.rule == "supported-ops"]
    assert [f.op for f in unsupported] == ["LEAKY_RELU"]
