"""Measurements (not tests): detector recall on annotated scenes, per-stage latency, the seeds'
approach side by side. Each writes JSON results and a Markdown section for BENCHMARKS.md."""
