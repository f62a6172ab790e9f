import pytest

from convert.quantize import quality_gate
from edge.errors import QualityGateError


def test_int8_losing_more_than_a_point_fails_and_less_passes():
    float_reports = {"validation": {"balanced_accuracy": 0.99}, "real": {"balanced_accuracy": 0.96}}
    with pytest.raises(QualityGateError, match="validation: float 0.9900, int8 0.9700"):
        quality_gate(float_reports, {"validation": {"balanced_accuracy": 0.97},
                                     "real": {"balanced_accuracy": 0.96}})
    quality_gate(float_reports, {"validation": {"balanced_accuracy": 0.985},
                                 "real": {"balanced_accuracy": 0.951}})
