"""What the Edge TPU worker process costs per inference: the 224x224x3 classifier run in-process
vs through the worker (parent -> child -> parent over the Pipe), medians of many runs in one
process, interleaved. Not a test (pytest does not collect it); run it by hand:

    .venv/bin/python tests/inference/bench_edgetpu_worker.py [RUNS]

The worker runs the CPU int8 model under the stand-in libedgetpu (its delegate claims no node),
so both sides do the same arithmetic and the difference is the transport: pickling the input,
the socket round trip, unpickling, and pickling the output back.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from edge.inference.accelerator import AcceleratedModel, AcceleratorSettings  # noqa: E402
from edge.inference.edgetpu_worker import EdgeTpuHosts  # noqa: E402
from edge.inference.runtime import open_interpreter  # noqa: E402


def build_stand_in(folder):
    """gcc the stand-in libedgetpu into `folder`; its path."""
    out = os.path.join(folder, "libedgetpu.so.1")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", out,
                    os.path.join(ROOT, "tests", "stand_in", "libedgetpu_stand_in.c")], check=True)
    return out


def timed(call, runs):
    """Per-call milliseconds."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def main(runs=300, threads=1):
    folder = tempfile.mkdtemp()
    try:
        os.environ["MASKDET_EDGETPU_LIBRARY"] = build_stand_in(folder)
        cpu = os.path.join(folder, "x_int8.tflite")
        shutil.copy(os.path.join(ROOT, "models", "mask_classifier_int8.tflite"), cpu)
        shutil.copy(cpu, os.path.join(folder, "x_int8_edgetpu.tflite"))
        image = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)

        local = open_interpreter(cpu, num_threads=threads)
        index = local.get_input_details()[0]["index"]
        out_index = local.get_output_details()[0]["index"]

        def in_process():
            local.set_tensor(index, image)
            local.invoke()
            local.get_tensor(out_index)

        hosts = EdgeTpuHosts()
        worker = AcceleratedModel(cpu, AcceleratorSettings(threads=threads), hosts=hosts)
        assert worker.accelerator == "edgetpu", worker.placement
        w_in = worker.get_input_details()[0]["index"]
        w_out = worker.get_output_details()[0]["index"]

        host = hosts.host(None, worker.runtime.name)
        overhead_ms = []

        def through_worker():
            start = time.perf_counter()
            worker.set_tensor(w_in, image)
            worker.invoke()
            worker.get_tensor(w_out)
            overhead_ms.append((time.perf_counter() - start - host.last_invoke_s) * 1000.0)

        def transport_only():  # the same input there and back, no inference
            host.ping([image])

        for call in (in_process, through_worker, transport_only):
            timed(call, 20)  # warm up
        local_ms, worker_ms, transport_ms = [], [], []
        for _ in range(runs // 10):
            local_ms += timed(in_process, 10)
            worker_ms += timed(through_worker, 10)
            transport_ms += timed(transport_only, 10)
        m_local, m_worker = statistics.median(local_ms), statistics.median(worker_ms)
        assert np.array_equal(worker.get_tensor(w_out), local.get_tensor(out_index))
        print(f"{runs} invokes each, {threads} thread(s), 224x224x3 uint8 in, [1, 2] uint8 out")
        for name, values in (("in-process invoke", local_ms), ("through the worker", worker_ms),
                             ("transport only (ping)", transport_ms)):
            print(f"{name:24} median {statistics.median(values):7.3f} ms  "
                  f"p90 {np.percentile(values, 90):7.3f} ms")
        del overhead_ms[:20]  # the warm-up
        print(f"{'added per invoke':24} median {statistics.median(overhead_ms):7.3f} ms  "
              f"p90 {np.percentile(overhead_ms, 90):7.3f} ms  (round trip minus the invoke "
              "timed inside the worker)")
        print(f"difference of the medians: {m_worker - m_local:.3f} ms")
        hosts.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
