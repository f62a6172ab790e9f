"""The one error hierarchy of maskdet: every expected failure is a MaskdetError.

Each error carries a message meant for the person at the terminal: it names the file, key or
value at fault and says what to do. The command line prints it without a traceback.
"""


class MaskdetError(Exception):
    """Base of every error maskdet raises on purpose."""

    exit_code = 1


class ConfigError(MaskdetError):
    """A configuration file or value is invalid (exit status 78, EX_CONFIG)."""

    exit_code = 78


class DataError(MaskdetError):
    """Input data (an image folder, an annotation file, an image) cannot be used."""


class ModelError(MaskdetError):
    """A model file or its metadata is missing, corrupt or inconsistent."""


class AcceleratorError(MaskdetError):
    """The Edge TPU was required but cannot be used."""


class SourceError(MaskdetError):
    """A camera cannot be opened or has stopped delivering frames."""


class EndOfStream(SourceError):
    """A file or folder (not looped) has no more frames."""


class GpioError(MaskdetError):
    """The GPIO pins cannot be driven here: gpiozero is missing or no pin factory works (not a
    Raspberry Pi, or no lgpio). Exit status 69 (EX_UNAVAILABLE)."""

    exit_code = 69


class FetchError(MaskdetError):
    """A third-party file could not be fetched or failed its checksum."""


class QualityGateError(MaskdetError):
    """A measured quality (accuracy, op mapping) fails the bar it must clear."""


def run_reporting(prog, call):
    """Run a command's function; a MaskdetError becomes one line on stderr and its exit status
    (no traceback for the errors we expect)."""
    import sys

    try:
        return call() or 0
    except MaskdetError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
