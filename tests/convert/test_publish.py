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
    if meta.pop("second_opinion", None):  # one model, not the shipped pair: its own numbers
        del meta["sha256"][meta["files"].pop("second_opinion")]
        meta["metrics"].update(meta["metrics"].pop("first_model_alone"))
    meta["input"]["size"] = size
    meta["metrics"]["int8"]["validation"]["balanced_accuracy"] = val
    meta["metrics"]["int8"]["real-world scenes"]["balanced_accuracy"] = real
    meta["quality_gate"] = {"passed": passed, "reason": "int8 lost 2 points"}
    (run / "mask_classifier.json").write_text(json.dumps(meta))
    return str(run)


def candidate(size, val, real, ms, below_nose_right=None):
    by_kind = {} if below_nose_right is None else \
        {"held-out scenes": {"mask_weared_incorrect": [below_nose_right, 100]}}
    return {"meta": {"input": {"size": size}, "latency_cpu_int8": {"median_ms": ms},
                     "metrics": {"int8": {"validation": {"balanced_accuracy": val},
                                          "real-world scenes": {"balanced_accuracy": real}},
                                 "int8_correct_by_kind": by_kind}}}


def test_the_fastest_of_the_runs_close_to_the_best_is_chosen():
    chosen, reason = choose([candidate(224, 0.980, 0.950, 9.0), candidate(160, 0.978, 0.945, 5.0),
                             candidate(128, 0.970, 0.930, 3.0)])
    assert chosen["meta"]["input"]["size"] == 160 and "fastest" in reason


def test_a_faster_run_that_calls_more_masks_below_the_nose_mask_is_not_chosen():
    teacher = candidate(224, 0.980, 0.950, 9.0, below_nose_right=92)
    student = candidate(160, 0.980, 0.950, 5.0, below_nose_right=88)
    chosen, reason = choose([teacher, student])
    assert chosen is teacher and "below the nose" in reason
    student_as_good = candidate(160, 0.980, 0.950, 5.0, below_nose_right=91)
    assert choose([teacher, student_as_good])[0] is student_as_good


def test_a_run_half_a_point_behind_on_real_world_faces_is_not_close():
    chosen, _ = choose([candidate(224, 0.980, 0.960, 9.0), candidate(160, 0.980, 0.954, 5.0)])
    assert chosen["meta"]["input"]["size"] == 224


def test_without_a_run_close_on_both_sets_the_best_real_world_run_wins():
    chosen, reason = choose([candidate(224, 0.990, 0.900, 9.0), candidate(128, 0.970, 0.950, 3.0)])
    assert chosen["meta"]["input"]["size"] == 128 and "real-world" in reason


def measured(size, ms, masks, bare, below_nose, real=0.96):
    """A candidate measured on every kind the targets name (306 masks, 44 bare, 113 below)."""
    c = candidate(size, 0.97, real, ms)
    c["meta"]["metrics"]["int8_correct_by_kind"] = {
        "real-world scenes": {"with_mask": [masks, 306], "without_mask": [bare, 44]},
        "held-out scenes": {"mask_weared_incorrect": [below_nose, 113]}}
    return c


def test_with_every_kind_measured_the_model_nearest_its_targets_wins_over_balanced_accuracy():
    """Session 5's teacher (masks 295 of 306: 1.6 points short) against its student (masks 302,
    held-out masks below the nose 101 of 113: 0.6 point short): the student, though its
    real-world balanced accuracy were lower and the teacher faster."""
    teacher = measured(224, 3.0, masks=295, bare=44, below_nose=104, real=0.99)
    student = measured(128, 5.0, masks=302, bare=44, below_nose=101, real=0.95)
    chosen, reason = choose([teacher, student])
    assert chosen is student and "nearest to meeting every target" in reason
    assert "0.6 points short" in reason


def test_of_the_models_meeting_every_target_the_fastest_wins():
    slow = measured(224, 3.0, masks=305, bare=44, below_nose=110)
    fast = measured(128, 1.1, masks=300, bare=43, below_nose=102)
    chosen, reason = choose([slow, fast])
    assert chosen is fast and "the fastest of the models that meet every target" in reason
    # 299 of 306 masks is 0.3 point short: within the tolerance (half a face below the nose)
    short_by_one_mask = measured(96, 0.5, masks=299, bare=44, below_nose=110)
    assert choose([slow, fast, short_by_one_mask])[0] is short_by_one_mask
    short_by_two_below = measured(96, 0.5, masks=305, bare=44, below_nose=100)  # 1.5 short
    assert choose([slow, fast, short_by_two_below])[0] is fast


def test_a_run_that_failed_the_quality_gate_is_not_published(tmp_path):
    good = fake_run(tmp_path, 128, 0.97, 0.92)
    bad = fake_run(tmp_path, 224, 0.99, 0.99, passed=False)
    meta = publish([bad, good], str(tmp_path / "out"))
    assert meta["input"]["size"] == 128
    assert [c["size"] for c in meta["selection"]["candidates"]] == [128]
    rejected = meta["selection"]["not_candidates"]
    assert [(c["size"], c["why"]) for c in rejected] == [(224, "int8 lost 2 points")]
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "not candidates" in card and "224x224: int8 lost 2 points" in card
    with pytest.raises(QualityGateError, match="no run passed"):
        publish([bad], str(tmp_path / "out2"))


def test_each_candidates_kinds_are_measured_at_every_threshold_and_drawn(tmp_path):
    """With the sets that name each face's kind, the card says at which thresholds (if any)
    every kind meets its target, measured on real faces, and shows the figure."""
    from convert import defaults
    from convert.evaluation_sets import held_out_scenes_set, real_world_set
    from convert.targets import KIND_TARGETS

    sets = [real_world_set(defaults.real_world_annotations()),
            held_out_scenes_set(defaults.held_out_scene_photos())]
    run = fake_run(tmp_path, 224, 0.97, 0.96)
    meta = publish([run], str(tmp_path / "out"), sets=sets)
    kinds = meta["selection"]["candidates"][0]["kinds"]
    by_kind = meta["metrics"]["int8_correct_by_kind"]
    for (set_name, kind) in KIND_TARGETS:
        right, total = by_kind[set_name][kind]
        assert kinds["at_threshold"][f"{set_name}: {kind}"] == pytest.approx(right / total)
    met = kinds["thresholds_meeting_all_targets"]
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "![kinds against the threshold](card/kinds_tradeoff.png)" in card
    assert (tmp_path / "out" / "card" / "kinds_tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert ("no threshold meets them together" in card) == (not met)
    best = kinds["below_nose_with_others_at_target"]
    assert (f"at most {best['right']} of {best['total']}" if best else
            "no threshold lets masks worn correctly and bare faces meet") in card


def test_a_threshold_meets_the_targets_only_when_every_kind_does():
    from convert.tradeoff import thresholds_meeting_targets

    thresholds = (0.2, 0.5, 0.65, 0.8)
    scores = {"real-world scenes": {"with_mask": [0.1] * 90 + [0.4] * 10, "without_mask": [0.9] * 100},
              "held-out scenes": {"mask_weared_incorrect": [0.3] * 5 + [0.6] * 95}}
    # 0.2: masks 0.90; 0.5: masks 1.0, below the nose 0.95; 0.65 and 0.8: below the nose 0.
    assert thresholds_meeting_targets(scores, thresholds) == [0.5]
    scores["held-out scenes"]["mask_weared_incorrect"] = [0.3] * 20 + [0.6] * 80
    assert thresholds_meeting_targets(scores, thresholds) == []
    del scores["real-world scenes"]["without_mask"]
    scores["held-out scenes"]["mask_weared_incorrect"] = [0.6] * 100
    assert thresholds_meeting_targets(scores, thresholds) == []  # a kind not measured meets nothing


def test_masks_below_the_nose_are_compared_with_the_other_kinds_at_their_targets():
    """A model that buys masks below the nose by calling masks no_mask is measured where masks
    meet their target: the threshold is the best one that keeps every other kind at target."""
    from convert.tradeoff import best_with_others_at_target

    scores = {"real-world scenes": {"with_mask": [0.1] * 97 + [0.35, 0.45, 0.5],
                                    "without_mask": [0.9] * 100},
              "held-out scenes": {"mask_weared_incorrect": [0.3] * 10 + [0.4] * 10 + [0.6] * 80}}
    # at 0.3 all 100 below the nose are no_mask but masks are 0.97; from above 0.35 masks are
    # 0.98, and the lowest such threshold (0.4) calls 90 of 100 below the nose no_mask
    best = best_with_others_at_target(scores)
    assert (best["right"], best["total"]) == (90, 100) and 0.35 < best["threshold"] <= 0.4
    scores["real-world scenes"]["without_mask"] = [0.2] * 100  # bare faces fail above 0.2
    assert best_with_others_at_target(scores) is None


def test_of_two_runs_of_one_size_the_one_better_on_real_world_faces_wins_not_latency_noise():
    """Two 128 px students as near their targets, timed 1.14 and 1.10 ms (one architecture):
    the one with the better real-world balanced accuracy."""
    better = measured(128, 1.14, masks=302, bare=44, below_nose=101, real=0.985)
    other = measured(128, 1.10, masks=301, bare=44, below_nose=101, real=0.974)
    assert choose([other, better])[0] is better
    faster_by_far = measured(96, 0.6, masks=301, bare=44, below_nose=101, real=0.974)
    assert choose([other, better, faster_by_far])[0] is faster_by_far
    assert "count as one speed" in choose([other, better])[1]


def test_two_runs_of_one_network_are_one_speed_however_far_apart_the_drifting_machine_timed_them():
    """Three 128 px students timed 1.41, 1.39 and 1.11 ms (this machine drifts by tens of
    percent within minutes): one network, so the better on real-world faces wins, not the
    luckier timing; a network of another size that far apart is not one speed."""
    better = measured(128, 1.41, masks=302, bare=44, below_nose=101, real=0.985)
    lucky = measured(128, 1.11, masks=298, bare=44, below_nose=101, real=0.978)
    for c in (better, lucky):
        c["meta"]["size_bytes"] = 2731840
    assert choose([lucky, better])[0] is better
    smaller = measured(112, 1.11, masks=298, bare=44, below_nose=101, real=0.978)
    smaller["meta"]["size_bytes"] = 2731840
    assert choose([smaller, better])[0] is smaller


def test_the_card_names_each_runs_recipe_where_it_differs_from_the_default(tmp_path):
    """Two runs of one recipe but for a detail must be told apart in the card by that detail."""
    plain, other = fake_run(tmp_path, 128, 0.97, 0.96), fake_run(tmp_path, 160, 0.97, 0.96)
    meta_path = tmp_path / "r160" / "mask_classifier.json"
    meta = json.loads(meta_path.read_text())
    meta["training"].update({"detector_framed_faces": 2345, "augmented_views": 4})
    meta["training"]["distillation"]["alpha"] = 0.8
    meta["labels"] = ["mask", "no_mask", "mask_below_nose"]
    meta["no_mask_labels"] = ["no_mask", "mask_below_nose"]
    meta_path.write_text(json.dumps(meta))
    publish([plain, other], str(tmp_path / "out"))
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    rows = {line[2:9]: line for line in card.splitlines()
            if line.startswith(("| 128x128", "| 160x160"))}
    details = ("2,345 scene faces also cut by the detector's box", "4 augmented views per face",
               "the label 0.8 of each target", "an output of its own for masks below the nose")
    assert all(d in rows["160x160"] for d in details)
    assert not any(d in rows["128x128"] for d in details)


def test_the_card_of_a_three_output_model_says_how_p_no_mask_is_read():
    from convert.model_card import _kinds_line

    assert _kinds_line({"labels": ["mask", "no_mask"]}) == ""
    line = _kinds_line({"labels": ["mask", "no_mask", "mask_below_nose"],
                        "no_mask_labels": ["no_mask", "mask_below_nose"]})
    assert "sum of `no_mask` and `mask_below_nose`" in line and "reason" in line


def test_the_card_names_every_teacher_of_a_distilled_run():
    from convert.publish import _teacher_size

    ensemble = {"training": {"distillation": {
        "teachers": ["runs/c/r224/m_float.tflite", "runs/d/r160/m_float.tflite"],
        "teacher_sizes": [224, 160]}}}
    assert _teacher_size(ensemble) == \
        "the 224x224 model of `runs/c/r224` and the 160x160 model of `runs/d/r160`"
    single = {"training": {"distillation": {"teacher": "runs/c/r224/m_float.tflite",
                                            "teacher_size": 224}}}
    assert _teacher_size(single) == "the 224x224 model of `runs/c/r224`"
    assert _teacher_size({"training": {}}) is None
