"""Strict YAML -> dataclass loading: unknown keys, wrong types and bad values are ConfigErrors
that name the key path and the line, so `maskdet run` can exit 78 with a useful message.

A config section is a dataclass; each field may carry `metadata={"help": ..., "check": fn}` where
`fn(value)` returns an error message or None. Nested dataclasses, `list[Section]`, Optional
values and plain scalars are supported.

Rules for every field, whatever its own check says:
- a float value must be finite: `.nan`, `.inf` and `-.inf` are refused everywhere (a NaN passes
  every comparison, so a range check alone would let it through);
- a `str` field takes only a YAML string, except where its metadata says `"accept_int": True`
  (only `cameras[].source.url`, where `0` means the V4L2 device /dev/video0): there a YAML
  int written in decimal digits is taken as those digits (`url: 0` is `"0"`).
"""
import dataclasses
import math
import types
import typing

import yaml

from edge.errors import ConfigError

# `int | None` has its own type from Python 3.10 on; on 3.9 only typing.Union exists.
_PEP604_UNION = getattr(types, "UnionType", typing.Union)


def _where(path, node):
    line = f" (line {node.start_mark.line + 1})" if node is not None else ""
    return f"{path or 'the top level'}{line}"


def _scalar(node, path, kind, accept_int=False):
    try:
        value = yaml.safe_load(yaml.serialize(node))
    except yaml.YAMLError as exc:  # pragma: no cover - composed nodes re-serialise
        raise ConfigError(f"{_where(path, node)}: {_one_line(exc)}") from exc
    if kind is str and accept_int and isinstance(value, int) and not isinstance(value, bool):
        if not node.value.isdigit():  # -1, 0x1f, 1_000: YAML ints that are no device number
            raise ConfigError(f"{_where(path, node)}: a device number is written in decimal "
                              f"digits, 0 or more, got {node.value}")
        value = node.value  # as written: YAML 1.1 would read 010 as octal 8
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{_where(path, node)}: {value} is too large for a number") from None
    if kind is not typing.Any and (
            not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool))):
        raise ConfigError(f"{_where(path, node)}: expected {kind.__name__}, got "
                          f"{type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_where(path, node)}: must be a finite number, not {value!r} "
                          "(.nan and .inf are not allowed)")
    return value


def _unwrap_optional(kind):
    if typing.get_origin(kind) in (typing.Union, _PEP604_UNION):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def _load(kind, node, path, accept_int=False):
    kind, optional = _unwrap_optional(kind)
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        if optional:
            return None
        raise ConfigError(f"{_where(path, node)}: a value is required")
    if dataclasses.is_dataclass(kind):
        return load_section(kind, node, path)
    if typing.get_origin(kind) in (list, tuple):
        (item,) = typing.get_args(kind)[:1]
        if not isinstance(node, yaml.SequenceNode):
            raise ConfigError(f"{_where(path, node)}: expected a list")
        values = [_load(item, child, f"{path}[{i}]") for i, child in enumerate(node.value)]
        return tuple(values) if typing.get_origin(kind) is tuple else values
    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError(f"{_where(path, node)}: expected a single value, not a "
                          f"{'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}")
    return _scalar(node, path, kind, accept_int)


def load_section(cls, node, path=""):
    """Build dataclass `cls` from a YAML mapping node, strictly."""
    if node is None:
        node_items = []
    elif isinstance(node, yaml.MappingNode):
        node_items = node.value
    else:
        raise ConfigError(f"{_where(path, node)}: expected a mapping of keys to values")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    given = {}
    for key_node, value_node in node_items:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(f"{_where(path, key_node)}: a key must be a plain name, not a "
                              f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'}")
        key = key_node.value
        key_path = f"{path}.{key}" if path else key
        if key not in fields:
            raise ConfigError(f"{_where(key_path, key_node)}: unknown key '{key}'; allowed here: "
                              f"{', '.join(sorted(fields))}")
        if key in given:
            raise ConfigError(f"{_where(key_path, key_node)}: '{key}' is given twice")
        value = _load(hints[key], value_node, key_path, fields[key].metadata.get("accept_int", False))
        check = fields[key].metadata.get("check")
        problem = check(value) if check and value is not None else None
        if problem:
            raise ConfigError(f"{_where(key_path, value_node)}: {problem} (got {value!r})")
        given[key] = value
    missing = [name for name, f in fields.items() if name not in given and
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{_where(path, node)}: missing required key(s) {', '.join(missing)}")
    try:
        return cls(**given)
    except ValueError as exc:  # cross-field checks in __post_init__
        raise ConfigError(f"{_where(path, node)}: {exc}") from exc


def _one_line(exc):
    """A YAML error as one line: where (line, column) and what."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        context = getattr(exc, "context", None)
        text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
        return " ".join((text + (f" ({context})" if context else "")).split())
    return " ".join(str(exc).split())


def load_yaml(cls, text, filename="<config>"):
    """Parse YAML text into dataclass `cls`; syntax errors name the file and line (one line)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, controls)
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else "?"
        raise ConfigError(f"{filename}: not valid YAML at line {line}: character "
                          f"{exc.character!r} is not allowed ({exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: not valid YAML at {_one_line(exc)}") from None
    try:
        return load_section(cls, node)
    except ConfigError as exc:
        raise ConfigError(f"{filename}: {exc}") from None
