"""maskdet's edge half: everything that runs on the Pi (never imports TensorFlow)."""
try:
    from importlib.metadata import PackageNotFoundError, version as _version

    __version__ = _version("maskdet")
except PackageNotFoundError:  # run from a checkout that was not installed
    __version__ = "0+unknown"
