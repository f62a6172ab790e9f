import os
import stat

import pytest

from convert.edgetpu_compiler import compile_model, parse_compiler_output
from edge.errors import QualityGateError
from tests.conftest import shared_path

# The compiler's summary on stdout (format of edgetpu_compiler 16), as it precedes the op table.
STDOUT = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1170 ms.

Input model: m.tflite
Input size: 2.61MiB
Output model: m_edgetpu.tflite
Output size: 2.83MiB
On-chip memory used for caching model parameters: 2.59MiB
On-chip memory remaining for caching model parameters: 4.42MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: {total}
Operation log: m_edgetpu.log

Operator                       Count      Status

CONV_2D                        35         Mapped to Edge TPU
{extra}"""
CPU_ROW = "ARG_MAX                        1          Operation not supported\n"


def test_parses_the_real_operation_log_of_a_compiled_mask_model():
    with open(shared_path("models", "coral_pair", "mask_detector_quant_v2_edgetpu.log")) as f:
        result = parse_compiler_output(f.read())
    assert result.version == "14.1.317412892"
    assert {row["op"]: row["count"] for row in result.ops}["CONV_2D"] == 35
    assert result.tpu_op_count == 73 and result.cpu_ops == []


def test_parses_memory_subgraphs_and_cpu_ops_from_stdout():
    result = parse_compiler_output(STDOUT.format(total=36, extra=CPU_ROW))
    assert result.subgraphs == 1
    assert result.on_chip_bytes == int(2.59 * 2**20) and result.off_chip_bytes == 0
    assert [r["op"] for r in result.cpu_ops] == ["ARG_MAX"]


def fake_compiler(bin_dir, extra):
    """A stand-in edgetpu_compiler (the real one cannot be installed here) printing real-format
    output and writing the _edgetpu file, so the subprocess path is exercised."""
    (bin_dir / "stdout.txt").write_text(STDOUT.format(total=36, extra=extra))
    script = bin_dir / "edgetpu_compiler"
    script.write_text(
        "#!/bin/sh\n"
        "out=.\n"
        'while [ $# -gt 1 ]; do case "$1" in --out_dir) out="$2"; shift;; esac; shift; done\n'
        'cp "$1" "$out/$(basename "$1" .tflite)_edgetpu.tflite"\n'
        f'cat "{bin_dir / "stdout.txt"}"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\0\0\0\0TFL3")
    return path


def test_compile_writes_the_edgetpu_model_when_all_ops_map(tmp_path, model):
    fake_compiler(tmp_path, "")
    result = compile_model(str(model), str(tmp_path))
    assert os.path.isfile(tmp_path / "m_edgetpu.tflite")
    assert result.output.endswith("m_edgetpu.tflite") and result.subgraphs == 1


def test_compile_fails_when_an_op_falls_to_the_cpu(tmp_path, model):
    fake_compiler(tmp_path, CPU_ROW)
    with pytest.raises(QualityGateError, match="ARG_MAX x1: Operation not supported"):
        compile_model(str(model), str(tmp_path))
