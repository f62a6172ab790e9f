"""`check-edgetpu`: does a .tflite file meet the Edge TPU compiler's rules? Checked on the file.

`edgetpu_compiler` runs only on x86-64 Debian-family Linux; this check reads the flatbuffer itself
and reports each rule the compiler would refuse, with the op and the reason. Rules (Coral's
"TensorFlow models on the Edge TPU", compiler 16): 8-bit integer tensors, static shapes with
batch one, at most three non-unit dimensions per activation, only the supported ops with their
constraints, one subgraph, and parameters that fit the on-chip cache.
"""
import collections
import os
from dataclasses import dataclass, field

import numpy as np

from edge.errors import ModelError

# Parameter cache of one Edge TPU available for model parameters (the compiler reports about
# 7.0 MB for a lone model; 6.9 MiB keeps a margin for the co-compiled face detector's overhead).
ON_CHIP_CACHE_BYTES = int(6.9 * 1024 * 1024)

SUPPORTED_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM",
    "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX",
    "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})
INTEGER_ACTIVATION_TYPES = ("UINT8", "INT8")
INTEGER_CONSTANT_TYPES = ("UINT8", "INT8", "INT32")
ALLOWED_FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
SOFTMAX_MAX_ELEMENTS = 16000


@dataclass(frozen=True)
class Finding:
    """One rule the model breaks: `error` stops compilation to one TPU graph, `warning` slows it."""

    severity: str
    rule: str
    message: str
    op_index: int = None
    op: str = None

    def __str__(self):
        where = f"op {self.op_index} {self.op}: " if self.op is not None else ""
        return f"{self.severity}: [{self.rule}] {where}{self.message}"


@dataclass
class CheckReport:
    """Everything check-edgetpu found in one model file."""

    path: str
    subgraphs: int
    ops: collections.Counter
    parameter_bytes: int
    findings: list = field(default_factory=list)

    @property
    def errors(self):
        """Findings that would keep an op off the Edge TPU."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def compatible(self):
        """True when every op would map to the Edge TPU in one subgraph."""
        return not self.errors

    def as_dict(self):
        """JSON-ready form."""
        return {"model": self.path, "compatible": self.compatible, "subgraphs": self.subgraphs,
                "ops": dict(sorted(self.ops.items())), "parameter_bytes": self.parameter_bytes,
                "findings": [f.__dict__ for f in self.findings]}


def _enum_names(enum_class):
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


class _Model:
    """A thin reader over the `tflite` package's generated flatbuffer classes."""

    def __init__(self, path):
        import tflite

        self.tflite = tflite
        try:
            with open(path, "rb") as handle:
                self.buf = handle.read()
        except OSError as exc:
            raise ModelError(f"cannot read model {path}: {exc}") from exc
        if self.buf[4:8] != b"TFL3":
            raise ModelError(f"{path} is not a TFLite model (no TFL3 identifier in its header)")
        self.model = tflite.Model.GetRootAsModel(self.buf, 0)
        self.op_names = _enum_names(tflite.BuiltinOperator)
        self.type_names = _enum_names(tflite.TensorType)
        self.act_names = _enum_names(tflite.ActivationFunctionType)

    def op_name(self, op):
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if self.op_names.get(builtin) == "CUSTOM":
            return "CUSTOM:" + (code.CustomCode() or b"").decode()
        return self.op_names.get(builtin, f"BUILTIN_{builtin}")

    def constant_data(self, tensor):
        """The tensor's constant bytes (empty for activations)."""
        buffer = self.model.Buffers(tensor.Buffer())
        return buffer.DataAsNumpy() if buffer is not None and buffer.DataLength() else None

    def options(self, op, options_class):
        table = op.BuiltinOptions()
        if table is None:
            return None
        opts = options_class()
        opts.Init(table.Bytes, table.Pos)
        return opts


def _shape(tensor):
    return [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []


def _int32_values(reader, tensor):
    data = reader.constant_data(tensor)
    return None if data is None else np.frombuffer(data.tobytes(), dtype=np.int32)


def _short(name):
    return name.split(";")[0][-60:]


def _check_tensors(reader, graph, findings):
    wrong_types = collections.defaultdict(list)
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        name = tensor.Name().decode(errors="replace")
        dtype = reader.type_names.get(tensor.Type(), str(tensor.Type()))
        constant = reader.constant_data(tensor) is not None
        if dtype not in (INTEGER_CONSTANT_TYPES if constant else INTEGER_ACTIVATION_TYPES):
            wrong_types[("constant" if constant else "activation", dtype)].append(_short(name))
        signature = [int(d) for d in tensor.ShapeSignatureAsNumpy()] if tensor.ShapeSignatureLength() else []
        if any(d < 0 for d in signature):
            findings.append(Finding("error", "static-shape",
                                    f"tensor '{_short(name)}' has a dynamic shape {signature}; "
                                    "export with a fixed [1, H, W, 3] input"))
        shape = _shape(tensor)
        if not constant and len(shape) > 3 and any(d != 1 for d in shape[:-3]):
            findings.append(Finding("error", "dimensions",
                                    f"tensor '{_short(name)}' of shape {shape} has more than 3 "
                                    "non-unit dimensions (only the innermost three may exceed 1)"))
    for (kind, dtype), names in sorted(wrong_types.items()):
        examples = ", ".join(f"'{n}'" for n in names[:3]) + (", ..." if len(names) > 3 else "")
        findings.append(Finding("error", "integer-types",
                                f"{len(names)} {kind} tensor(s) are {dtype} ({examples}); the Edge "
                                "TPU needs int8/uint8: use full-integer post-training quantization"))


def _check_inputs(reader, graph, findings):
    for i in range(graph.InputsLength()):
        tensor = graph.Tensors(graph.Inputs(i))
        shape = _shape(tensor)
        if shape and shape[0] != 1:
            findings.append(Finding("error", "batch-one",
                                    f"input '{_short(tensor.Name().decode())}' has batch {shape[0]}; "
                                    "the Edge TPU runs batch 1"))


def _fused_activation(reader, op, options_class):
    opts = reader.options(op, options_class)
    if opts is None or not hasattr(opts, "FusedActivationFunction"):
        return "NONE"
    return reader.act_names.get(opts.FusedActivationFunction(), "?")


def _op_constraints(reader, graph, op, name):
    """Reasons this supported op still cannot map, from Coral's table of known limitations."""
    tfl = reader.tflite
    reasons = []
    inputs = [graph.Tensors(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
    outputs = [graph.Tensors(op.Outputs(j)) for j in range(op.OutputsLength())]
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        cls = tfl.Conv2DOptions if name == "CONV_2D" else tfl.DepthwiseConv2DOptions
        opts = reader.options(op, cls)
        if opts is not None and opts.DilationHFactor() != opts.DilationWFactor():
            reasons.append("dilation differs between x and y")
        activation = _fused_activation(reader, op, cls)
        if activation not in ALLOWED_FUSED_ACTIVATIONS:
            reasons.append(f"fused activation {activation} is not supported")
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"):
        cls = tfl.Pool2DOptions if name != "CONCATENATION" else tfl.ConcatenationOptions
        activation = _fused_activation(reader, op, cls)
        if activation != "NONE":
            reasons.append(f"a fused activation ({activation}) is not allowed here")
    if name == "CONCATENATION":
        constants = [t for t in inputs if reader.constant_data(t) is not None]
        if constants and (len(inputs) != 2 or any(np.any(reader.constant_data(t)) for t in constants)):
            reasons.append("a constant input is allowed only as the all-zero second of two inputs")
    if name == "FULLY_CONNECTED":
        opts = reader.options(op, tfl.FullyConnectedOptions)
        if opts is not None and opts.WeightsFormat() != 0:
            reasons.append("only the default weights format is supported")
        if outputs and sum(d != 1 for d in _shape(outputs[0])) > 1:
            reasons.append(f"output {_shape(outputs[0])} is not one-dimensional")
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") and len(inputs) > 1:
        axes = _int32_values(reader, inputs[1])
        rank = len(_shape(inputs[0]))
        if axes is not None and any(int(a) % max(rank, 1) == 0 for a in axes):
            reasons.append("reduces over the batch dimension")
    if name in ("PAD",) and len(inputs) > 1:
        paddings = _int32_values(reader, inputs[1])
        if paddings is not None and len(paddings) >= 2 and any(paddings[:2]):
            reasons.append("pads the batch dimension")
    if name == "SOFTMAX" and inputs:
        shape = _shape(inputs[0])
        if sum(d != 1 for d in shape) > 1 or int(np.prod(shape or [0])) > SOFTMAX_MAX_ELEMENTS:
            reasons.append(f"input {shape} is not a 1-D vector of at most {SOFTMAX_MAX_ELEMENTS}")
    return reasons


def _check_ops(reader, graph, findings, ops):
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        name = reader.op_name(op)
        ops[name] += 1
        if name == "CUSTOM:edgetpu-custom-op":
            findings.append(Finding("error", "already-compiled",
                                    "this model is already compiled for the Edge TPU; check its "
                                    "CPU twin instead", index, name))
        elif name not in SUPPORTED_OPS:
            findings.append(Finding("error", "supported-ops",
                                    "not in the Edge TPU's supported operations; it and every op "
                                    "after it would run on the CPU", index, name))
        else:
            for reason in _op_constraints(reader, graph, op, name):
                findings.append(Finding("error", "op-constraints", reason, index, name))


def parameter_bytes(reader):
    """Bytes of constant data (weights, biases) in the model."""
    graph = reader.model.Subgraphs(0)
    total, seen = 0, set()
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        data = reader.constant_data(tensor)
        if data is not None and tensor.Buffer() not in seen:
            seen.add(tensor.Buffer())
            total += data.size
    return total


def check_model(path, co_compiled=()):
    """Check one model file against the Edge TPU rules; `co_compiled` are models that will share
    the on-chip parameter cache with it (the face detector)."""
    reader = _Model(path)
    findings, ops = [], collections.Counter()
    subgraphs = reader.model.SubgraphsLength()
    if subgraphs != 1:
        findings.append(Finding("error", "one-subgraph",
                                f"the model has {subgraphs} subgraphs (control flow); the compiler "
                                "maps only the first and leaves the rest on the CPU"))
    graph = reader.model.Subgraphs(0)
    _check_inputs(reader, graph, findings)
    _check_tensors(reader, graph, findings)
    _check_ops(reader, graph, findings, ops)
    params = parameter_bytes(reader)
    shared = sum(parameter_bytes(_Model(other)) for other in co_compiled)
    if params + shared > ON_CHIP_CACHE_BYTES:
        findings.append(Finding("warning", "on-chip-cache",
                                f"parameters {params / 2**20:.2f} MiB (+{shared / 2**20:.2f} MiB "
                                f"co-compiled) exceed the ~{ON_CHIP_CACHE_BYTES / 2**20:.1f} MiB "
                                "on-chip cache: the rest streams from host memory on every invoke"))
    return CheckReport(os.fspath(path), subgraphs, ops, params, findings)


def format_report(report):
    """A readable multi-line report."""
    verdict = "compatible: every op can map to the Edge TPU" if report.compatible else \
        f"NOT compatible: {len(report.errors)} problem(s)"
    lines = [f"{report.path}: {verdict}",
             f"  subgraphs: {report.subgraphs}; parameters: {report.parameter_bytes / 2**20:.2f} MiB",
             "  ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(report.ops.items()))]
    lines += [f"  {finding}" for finding in report.findings]
    return "\n".join(lines)
