"""Where `maskdet bench` writes, and how its report names the baseline (also from older results)."""
import json
import os

import pytest

from edge.bench.report import BASELINE, render_markdown, targets, upgrade_results
from edge.bench.run import BACKENDS, DEFAULT_BACKEND, bench_outputs, run_bench, stamp_rows
from edge.paths import REPO_ROOT


def test_bench_writes_into_the_repository_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE", str(tmp_path / "cache"))
    assert bench_outputs() == (str(tmp_path / "cache" / "bench" / "results.json"),
                               str(tmp_path / "cache" / "bench" / "BENCHMARKS.md"))
    assert bench_outputs(str(tmp_path / "out")) == (str(tmp_path / "out" / "results.json"),
                                                    str(tmp_path / "out" / "BENCHMARKS.md"))
    assert bench_outputs(str(tmp_path / "out"), update_repo=True) == (
        os.path.join(REPO_ROOT, "benchmarks", "results.json"), os.path.join(REPO_ROOT, "BENCHMARKS.md"))


def stages(total):
    return {k: {"median": v, "p90": v} for k, v in
            {"decode": 3.0, "detect": 5.0, "classify": 4.0, "total": total}.items()}


def results_with(key):
    """Results as `maskdet bench` writes them, the baseline under `key`."""
    return {
        "latency": {f"{DEFAULT_BACKEND} / ai_edge_litert / 720p one face":
                    {"frames": 60, "stages_ms": stages(12.0), "fps": 80.0, "rounds": 3}},
        key: {"720p one face": {"frames": 57, "stages_ms": stages(175.0), "fps": 5.0}},
        "default_backend": DEFAULT_BACKEND, "per_video_frames": 60,
    }


def test_the_report_names_the_baseline_and_never_seeds():
    text = render_markdown(results_with("baseline"))
    assert "seed" not in text.lower()
    assert "## The baseline on the same frames" in text
    assert BASELINE in text and "res10 + float Keras MobileNetV2" in BASELINE
    assert "against the baseline's 5.00 fps: **16.0x**, meets the 10x target" in text
    assert "57 frames: detect 5.00 ms, classify 4.00 ms, total 175.00 ms median, 5.00 fps" in text


def test_a_row_kept_from_an_earlier_run_is_not_compared_with_this_runs_baseline():
    """`maskdet bench` keeps the rows of a runtime it did not measure (another venv's); their
    ratio to a baseline timed in another run would cross runs on a machine whose speed drifts."""
    results = results_with("baseline")
    stamp_rows(results, "this run")
    assert "**16.0x**" in targets(results)
    kept = dict(results["latency"][f"{DEFAULT_BACKEND} / ai_edge_litert / 720p one face"])
    kept["run"] = "an earlier run"
    results["latency"][f"{DEFAULT_BACKEND} / tflite_runtime / 720p one face"] = kept
    lines = targets(results).splitlines()
    earlier = [line for line in lines if "tflite_runtime" in line and "fps" in line]
    assert earlier == [f"- tflite_runtime: whole pipeline (decode included) 80.0 fps (timed in an "
                       "earlier run than the baseline: not compared)."]
    assert sum("**16.0x**" in line for line in lines) == 1


def test_results_of_older_versions_with_a_seeds_key_render_the_same():
    old = results_with("seeds")
    assert upgrade_results(old) == results_with("baseline")
    assert "seeds" in old  # the caller's dict is left alone
    assert render_markdown(old) == render_markdown(results_with("baseline"))
    assert targets(old) == targets(results_with("baseline"))
    both = dict(results_with("baseline"), seeds={"720p one face": {"fps": 1.0}})
    assert upgrade_results(both) == results_with("baseline")


def test_the_committed_results_render_with_the_baseline():
    with open(os.path.join(REPO_ROOT, "benchmarks", "results.json"), encoding="utf-8") as handle:
        text = render_markdown(json.load(handle))
    assert "seed" not in text.lower()
    assert "against the baseline's" in text and "## The baseline on the same frames" in text
    with open(os.path.join(REPO_ROOT, "BENCHMARKS.md"), encoding="utf-8") as handle:
        committed = handle.read()
    assert "seed" not in committed.lower() and BASELINE in committed


def test_an_old_results_file_is_rewritten_with_the_baseline_key(tmp_path):
    out_json, out_md = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    out_json.write_text(json.dumps(results_with("seeds")))
    run_bench(None, str(out_json), str(out_md), core=False)  # nothing measured: only re-rendered
    written = json.loads(out_json.read_text())
    assert "seeds" not in written and written["baseline"] == results_with("seeds")["seeds"]
    assert "against the baseline's 5.00 fps" in out_md.read_text()


def test_re_rendering_without_measuring_keeps_the_date_of_the_measurements(tmp_path):
    out_json, out_md = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    out_json.write_text(json.dumps(dict(results_with("baseline"), measured_on="2026-01-02")))
    run_bench(None, str(out_json), str(out_md), core=False)
    assert "Made by `maskdet bench` on 2026-01-02:" in out_md.read_text()
    assert json.loads(out_json.read_text())["measured_on"] == "2026-01-02"


def test_the_backends_are_the_choices_of_the_command_line():
    from edge.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["bench", "--backends", "res10", "yunet@480"])
    assert args.backends == ["res10", "yunet@480"] and set(args.backends) <= set(BACKENDS)


def test_the_coral_estimate_adds_the_stages_of_one_frame():
    from edge.bench.report import (FACES_IN_VIEW, PI4_CORAL_CLASSIFIER_MS, PI_CROP_MS, PI_WORKER_MS,
                                   coral_estimate, coral_estimate_section)

    per_face = PI4_CORAL_CLASSIFIER_MS[0] + PI_WORKER_MS[0] + PI_CROP_MS[0]
    ms, fps = coral_estimate(10.0, 1.0)
    assert ms == pytest.approx(10.0 + FACES_IN_VIEW * per_face) and fps == pytest.approx(1000 / ms)
    assert coral_estimate(10.0, 0.3)[0] < ms  # fewer invokes, a shorter frame
    section = coral_estimate_section()
    assert section.count("| YuNet on the CPU |") == 2 and "pycoral" in section
    # a pair's second opinion runs on the Pi's CPU: named with its share, not added to the TPU
    assert "runs on the Pi's CPU for the 10% of faces" in coral_estimate_section(0.1)
    assert coral_estimate_section(0.1).count("| YuNet on the CPU |") == 2
    assert "asked about" not in section


def test_the_shipped_pairs_share_is_read_from_its_metadata(tmp_path):
    import json

    from edge.bench.report import second_opinion_share

    path = tmp_path / "m.json"
    path.write_text(json.dumps({"second_opinion": {"asked": {"real-world scenes": 0.09}}}))
    assert second_opinion_share(str(path)) == 0.09
    path.write_text(json.dumps({"threshold": 0.3}))
    assert second_opinion_share(str(path)) == 0.0
    assert second_opinion_share(str(tmp_path / "missing.json")) == 0.0


def _decision_quality(sides_kinds_correct, threshold=0.5):
    faces = [{"kind": k, "side": s, "correct": c, "partial": p} for s, k, c, p in sides_kinds_correct]
    recall = {f"with_mask {b}": {"n": 10, "correct": 9, "accuracy": 0.9}
              for b in ("24-48 px", "48-96 px", ">= 96 px")}
    return {"classifier": {"sha256": "ab" * 32},
            "detector": {"default_threshold": threshold},
            "size_gate": {"current_min_face_size": 32, "faces": faces,
                          "recommendation": {"min_face_size": 40}},
            "threshold": {"photos": {str(threshold): {"recall": recall,
                                                      "classifiable_false_per_photo": 0.1}},
                          "recommendation": {"threshold": 0.5}},
            "border_cuts": {"recommendation": {"rule": "skip partial faces"}}}


def test_the_decision_summary_counts_only_whole_faces_at_the_gate_per_kind():
    from edge.bench.report import decision_summary, decisions_section

    dq = _decision_quality([(40, "with_mask", True, False), (40, "with_mask", False, False),
                            (20, "with_mask", False, False),  # under the gate: not decided on
                            (50, "without_mask", True, True),  # cut by the edge: apart
                            (60, "mask_weared_incorrect", True, False)])
    summary = decision_summary(dq)
    assert summary["decided_faces"] == {"with_mask": [1, 2], "without_mask": [0, 0],
                                        "mask_weared_incorrect": [1, 1]}
    assert summary["partial_faces"] == [1, 1]
    assert summary["masked_recall"]["48-96 px"] == [9, 10]
    text = decisions_section({"before": dict(summary, note="old"), "after": dict(summary, note="new")})
    assert "| masks called right (whole faces at the gate) | 0.500 (1/2) | 0.500 (1/2) |" in text
    assert "before (old)" in text and "after (new)" in text
    assert decisions_section({"before": summary}) == "Not measured yet: `maskdet bench --decisions`."


def test_writing_the_report_keeps_the_section_the_monitor_benchmark_owns(tmp_path):
    from edge.bench.report import write_report

    path = tmp_path / "BENCHMARKS.md"
    monitor = "<!-- monitor-bench:start -->\n## The central monitor under load\n2,000 events/s\n<!-- monitor-bench:end -->\n"
    path.write_text("# Benchmarks\nold core tables\n\n" + monitor)
    write_report(str(path), render_markdown(results_with("baseline")))
    text = path.read_text()
    assert "old core tables" not in text and "## Targets" in text
    assert text.count(monitor.strip()) == 1
    write_report(str(path), render_markdown(results_with("baseline")))  # again: still once
    assert path.read_text().count("<!-- monitor-bench:start -->") == 1
