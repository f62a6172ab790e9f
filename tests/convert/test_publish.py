"""Choosing the input size: failed quantization runs are never candidates; the rule's choice."""
import json
import shutil

import pytest

from convert.publish import choose, publish
from edge.errors import QualityGateError
from edge.paths import models_dir


def fake_run(tmp_path, size, val, real, passed=True):
    run = tmp_path / f"r{size}"
    run.mkdir()
    with open(f"{models_dir()}/mask_classifier.json") as f:
        meta = json.load(f)
    shutil.copyfile(f"{models_dir()}/{meta['files']['int8']}", run / meta["files"]["int8"])
    meta["input"]["size"] = size
    meta["metrics"]["int8"]["validation"]["balanced_accuracy"] = val
    meta["metrics"]["int8"]["real-world scenes"]["balanced_accuracy"] = real
    meta["quality_gate"] = {"passed": passed, "reason": "int8 lost 2 points"}
    (run / "mask_classifier.json").write_text(json.dumps(meta))
    return str(run)


def candidate(size, val, real, ms):
    return {"meta": {"input": {"size": size}, "latency_cpu_int8": {"median_ms": ms},
                     "metrics": {"int8": {"validation": {"balanced_accuracy": val},
                                          "real-world scenes": {"balanced_accuracy": real}}}}}


def test_the_fastest_of_the_runs_close_to_the_best_is_chosen():
    chosen, reason = choose([candidate(224, 0.980, 0.950, 9.0), candidate(160, 0.978, 0.945, 5.0),
                             candidate(128, 0.970, 0.930, 3.0)])
    assert chosen["meta"]["input"]["size"] == 160 and "fastest" in reason


def test_without_a_run_close_on_both_sets_the_best_real_world_run_wins():
    chosen, reason = choose([candidate(224, 0.990, 0.900, 9.0), candidate(128, 0.970, 0.950, 3.0)])
    assert chosen["meta"]["input"]["size"] == 128 and "real-world" in reason


def test_a_run_that_failed_the_quality_gate_is_not_published(tmp_path):
    good = fake_run(tmp_path, 128, 0.97, 0.92)
    bad = fake_run(tmp_path, 224, 0.99, 0.99, passed=False)
    meta = publish([bad, good], str(tmp_path / "out"))
    assert meta["input"]["size"] == 128
    assert [c["size"] for c in meta["selection"]["candidates"]] == [128]
    with pytest.raises(QualityGateError, match="no run passed"):
        publish([bad], str(tmp_path / "out2"))
