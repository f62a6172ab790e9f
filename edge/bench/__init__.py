"""Measurements (not tests): detector recall on annotated scenes, per-stage latency, and the
baseline (res10 + float Keras MobileNetV2, the recipe of the best-known mask-detection project)
side by side. Each writes JSON results and a Markdown section for BENCHMARKS.md."""
