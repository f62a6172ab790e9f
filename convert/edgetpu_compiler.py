"""`compile`: run `edgetpu_compiler` when it is installed and read what it says.

The compiler prints a summary (memory, subgraphs) and writes an operation log (one row per op
type: count and status). Both are parsed; any op left to the CPU fails the build.
"""
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from edge.errors import QualityGateError

log = logging.getLogger(__name__)

COMPILER = "edgetpu_compiler"
MAPPED = "Mapped to Edge TPU"
_OP_ROW = re.compile(r"^([A-Z][A-Z0-9_]*(?::[\w-]+)?)\s+(\d+)\s+(\S.*?)\s*$")
_SIZE = r"([\d.]+)\s*([KMG]?i?B)"
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 1e3, "MB": 1e6, "GB": 1e9}


@dataclass
class CompileResult:
    """What the compiler said about one model."""

    version: str = None
    ops: list = field(default_factory=list)  # [{"op", "count", "status"}]
    subgraphs: int = None
    on_chip_bytes: int = None
    off_chip_bytes: int = None
    output: str = None

    @property
    def cpu_ops(self):
        """Rows whose ops were not mapped to the Edge TPU."""
        return [row for row in self.ops if row["status"] != MAPPED]

    @property
    def tpu_op_count(self):
        """Number of ops mapped to the Edge TPU."""
        return sum(row["count"] for row in self.ops if row["status"] == MAPPED)


def _bytes(value, unit):
    return int(float(value) * _UNITS[unit])


def parse_compiler_output(text, result=None):
    """Parse the compiler's stdout and / or its operation log into a CompileResult."""
    result = result or CompileResult()
    in_table = False
    for line in text.splitlines():
        line = line.rstrip()
        if m := re.match(r"Edge TPU Compiler version (\S+)", line):
            result.version = m.group(1)
        elif m := re.match(r"Number of Edge TPU subgraphs:\s*(\d+)", line):
            result.subgraphs = int(m.group(1))
        elif m := re.match(r"On-chip memory used for caching model parameters:\s*" + _SIZE, line):
            result.on_chip_bytes = _bytes(*m.groups())
        elif m := re.match(r"Off-chip memory used for streaming uncached model parameters:\s*" + _SIZE, line):
            result.off_chip_bytes = _bytes(*m.groups())
        elif line.startswith("Operator") and "Status" in line:
            in_table = True
        elif in_table and (m := _OP_ROW.match(line)):
            result.ops.append({"op": m.group(1), "count": int(m.group(2)), "status": m.group(3)})
    return result


def compiler_available():
    """True when edgetpu_compiler is on PATH."""
    return shutil.which(COMPILER) is not None


def compile_model(model_path, out_dir=None, timeout=600):
    """Compile a model for the Edge TPU; returns the CompileResult with its output path.

    Raises QualityGateError when any op stays on the CPU or there is more than one subgraph.
    """
    out_dir = out_dir or os.path.dirname(os.path.abspath(model_path))
    cmd = [COMPILER, "--show_operations", "--out_dir", out_dir, model_path]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise QualityGateError(f"{COMPILER} failed on {model_path} (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    result = parse_compiler_output(proc.stdout)
    stem = os.path.splitext(os.path.basename(model_path))[0]
    log_file = os.path.join(out_dir, stem + "_edgetpu.log")
    if not result.ops and os.path.isfile(log_file):
        with open(log_file, encoding="utf-8") as handle:
            parse_compiler_output(handle.read(), result)
    result.output = os.path.join(out_dir, stem + "_edgetpu.tflite")
    if not os.path.isfile(result.output):
        raise QualityGateError(f"{COMPILER} reported success but wrote no {result.output}")
    problems = [f"{row['op']} x{row['count']}: {row['status']}" for row in result.cpu_ops]
    if result.subgraphs not in (None, 1):
        problems.append(f"{result.subgraphs} Edge TPU subgraphs (expected 1)")
    if problems:
        raise QualityGateError(f"{model_path}: not every op maps to the Edge TPU: " + "; ".join(problems))
    return result
