"""How a settings dataclass describes its fields: help text and a value check, read by the strict
config loader (`edge.config.loader`) and by the command line's help.

A settings class is defined once, where it is used (the detector's in `edge.inference.detectors`,
the decisions' in `edge.service.decision` ...), and the config schema composes those classes.
"""
import math
from dataclasses import field


def setting(default=None, help="", check=None, **kwargs):
    """A dataclass field with help text and an optional check `fn(value) -> problem or None`."""
    metadata = {"help": help, "check": check} if check else {"help": help}
    if "default_factory" in kwargs:
        return field(metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


def required(help="", check=None):
    """A dataclass field without a default (the config must give it)."""
    return field(metadata={"help": help, "check": check} if check else {"help": help})


def in_range(low=None, high=None):
    """A check: a finite number with low <= value <= high (either bound may be None)."""
    if low is not None and high is not None:
        wanted = f"between {low} and {high}"
    elif low is not None:
        wanted = f"at least {low}"
    elif high is not None:
        wanted = f"at most {high}"
    else:
        wanted = ""

    def check(value):
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number {wanted}".rstrip()
        if (low is not None and value < low) or (high is not None and value > high):
            return f"must be {wanted}"
        return None
    return check



def one_of(*choices):
    """A check: value in choices."""
    return lambda value: None if value in choices else f"must be one of {', '.join(map(str, choices))}"
