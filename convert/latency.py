"""CPU latency of a TFLite model through the edge runtime (what the Pi would run)."""
import time

import numpy as np

from edge.inference import tensors
from edge.inference.runtime import find_runtime, open_interpreter


def measure_latency(model_path, threads=1, warmup=5, runs=50, seed=0):
    """Median and p90 milliseconds of one invoke on random pixels, with the runtime's name."""
    runtime = find_runtime()
    interpreter = open_interpreter(model_path, runtime, num_threads=threads)
    details = tensors.input_details(interpreter)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=details["shape"][1:], dtype=np.uint8)
    tensor = tensors.quantize_pixels(pixels, details, 127.5, 127.5)[np.newaxis]
    times = []
    for i in range(warmup + runs):
        interpreter.set_tensor(details["index"], tensor)
        start = time.perf_counter()
        interpreter.invoke()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    return {"runtime": runtime.name, "threads": threads, "runs": runs,
            "median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}
