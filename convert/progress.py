"""Progress bars for long work (tqdm when installed, a plain pass-through otherwise)."""
import sys


def progress(iterable, desc=None, total=None):
    """Wrap an iterable in a progress bar written to stderr."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the convert extra
        return iterable
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, mininterval=2.0,
                dynamic_ncols=True, leave=False)
